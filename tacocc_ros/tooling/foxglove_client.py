"""A Foxglove WebSocket client (ws-protocol, subprotocol `foxglove.sdk.v1`) for tests and `tacocc drive`.

It plays the Foxglove app's part against the node's bridge: reads the server's `advertise` messages,
subscribes to the advertised channels it is asked for, and counts, per topic, the messages and bytes that
arrive (binary `MessageData` frames: opcode 0x01, uint32 subscription id, uint64 log time, payload, little
endian). With `keep` it also keeps the messages; `decode` turns a payload into the protobuf message of its
channel's schema (the FileDescriptorSet the server advertised), without the project's own code.

    with FoxgloveClient("ws://127.0.0.1:8765", topics={"/occupancy/voxels"}, keep=True) as client:
        log_time, grid = client.wait_for("/occupancy/voxels", timeout_s=30)
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

SUBPROTOCOL = "foxglove.sdk.v1"
MESSAGE_DATA = 0x01
HEADER = struct.Struct("<BIQ")  # opcode, subscription id, log time (ns)


class FoxgloveClientError(RuntimeError):
    """The server could not be reached, spoke another protocol, or did not send what was waited for."""


def protobuf_class(schema_name: str, schema_base64: str) -> Any:
    """The protobuf message class of an advertised channel: `schema_name` in the base64 FileDescriptorSet."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # only to decode

    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(schema_base64))
    pool = descriptor_pool.DescriptorPool()
    pending = list(files.file)
    while pending:  # add each file after the files it imports
        added = [f for f in pending if all(_has_file(pool, d) for d in f.dependency)]
        if not added:
            raise FoxgloveClientError(f"schema {schema_name}: unresolved imports in {[f.name for f in pending]}")
        for f in added:
            pool.Add(f)
            pending.remove(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema_name))


def _has_file(pool: Any, name: str) -> bool:
    try:
        pool.FindFileByName(name)
    except KeyError:
        return False
    return True


class FoxgloveClient:
    """Connects, subscribes and receives on a thread of its own until `close()` (see the module docstring).

    Args:
        url: `ws://host:port` of a Foxglove WebSocket server.
        topics: the topics to subscribe to (None: every advertised channel).
        keep: keep every received message (log time, payload) per topic, for `wait_for` and tests.
        connect_timeout_s: how long to retry connecting (the server may still be starting).
    """

    def __init__(
        self, url: str, topics: Iterable[str] | None = None, keep: bool = False, connect_timeout_s: float = 30.0
    ) -> None:
        self.url = url
        self.topics = None if topics is None else set(topics)
        self.keep = keep
        self.connect_timeout_s = connect_timeout_s
        self.channels: dict[int, dict] = {}  # channel id -> the advertised channel (topic, encoding, schema, ...)
        self.server_info: dict | None = None
        self.counts: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self.messages: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        self.error: BaseException | None = None
        self._subscriptions: dict[int, str] = {}  # subscription id -> topic
        self._lock = threading.Condition()
        self._ws: ClientConnection | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FoxgloveClient:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> FoxgloveClient:
        """Connect (retrying until `connect_timeout_s`) and start receiving; FoxgloveClientError on failure."""
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            try:
                ws = connect(self.url, subprotocols=[Subprotocol(SUBPROTOCOL)], max_size=None, open_timeout=5)
                # Entered as a context manager (closed by close()/drop()): what websockets >= 16 expects of it.
                self._ws = ws.__enter__()
                break
            except (OSError, TimeoutError) as err:
                if time.monotonic() > deadline:
                    raise FoxgloveClientError(f"{self.url}: no Foxglove server ({err})") from None
                time.sleep(0.2)
        if self._ws.subprotocol != SUBPROTOCOL:
            raise FoxgloveClientError(f"{self.url}: the server speaks {self._ws.subprotocol!r}, not {SUBPROTOCOL}")
        self._thread = threading.Thread(target=self._receive, name="foxglove-client", daemon=True)
        self._thread.start()
        return self

    def _receive(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            for message in ws:
                if isinstance(message, str):
                    self._on_text(ws, json.loads(message))
                else:
                    self._on_binary(message)
        except ConnectionClosed:
            pass
        except Exception as err:  # noqa: BLE001 - kept for the caller (wait_for raises it)
            self.error = err
        finally:
            with self._lock:
                self._lock.notify_all()

    def _on_text(self, ws: ClientConnection, message: dict) -> None:
        op = message.get("op")
        if op == "serverInfo":
            self.server_info = message
        elif op == "advertise":
            subscribe = []
            with self._lock:
                for channel in message["channels"]:
                    self.channels[channel["id"]] = channel
                    if self.topics is None or channel["topic"] in self.topics:
                        sub_id = len(self._subscriptions) + 1
                        self._subscriptions[sub_id] = channel["topic"]
                        subscribe.append({"id": sub_id, "channelId": channel["id"]})
                self._lock.notify_all()
            if subscribe:
                ws.send(json.dumps({"op": "subscribe", "subscriptions": subscribe}))

    def _on_binary(self, data: bytes) -> None:
        if len(data) < HEADER.size or data[0] != MESSAGE_DATA:
            return
        _, sub_id, log_time = HEADER.unpack_from(data)
        with self._lock:
            topic = self._subscriptions.get(sub_id)
            if topic is None:
                return
            self.counts[topic] += 1
            self.bytes[topic] += len(data) - HEADER.size
            if self.keep:
                self.messages[topic].append((log_time, data[HEADER.size :]))
            self._lock.notify_all()

    def channel(self, topic: str) -> dict:
        """The advertised channel of `topic` (KeyError when none was advertised)."""
        with self._lock:
            for channel in self.channels.values():
                if channel["topic"] == topic:
                    return channel
        raise KeyError(topic)

    def decode(self, topic: str, payload: bytes) -> Any:
        """A protobuf payload of `topic` -> its message, with the class built from the advertised schema."""
        channel = self.channel(topic)
        if channel["encoding"] != "protobuf" or channel.get("schemaEncoding") != "protobuf":
            raise FoxgloveClientError(f"{topic}: encoding {channel['encoding']!r} is not protobuf")
        return protobuf_class(channel["schemaName"], channel["schema"]).FromString(payload)

    def wait_for(self, topic: str, timeout_s: float, count: int = 1) -> tuple[int, Any]:
        """Wait until `count` messages of `topic` arrived (needs `keep`); the last one (log time, decoded)."""
        if not self.keep:
            raise FoxgloveClientError("wait_for needs a client made with keep=True")
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self.messages[topic]) < count:
                left = deadline - time.monotonic()
                if self.error is not None or left <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    raise FoxgloveClientError(
                        f"{self.url}: {len(self.messages[topic])} of {count} messages on {topic} in {timeout_s:.0f} s"
                        + (f" ({self.error})" if self.error else "")
                    )
                self._lock.wait(min(left, 0.5))
            log_time, payload = self.messages[topic][-1]
        return log_time, self.decode(topic, payload)

    def drop(self) -> None:
        """Cut the TCP connection without a WebSocket close handshake (a client that vanishes)."""
        if self._ws is not None:
            self._ws.socket.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        """Close the connection politely and stop the thread."""
        if self._ws is not None:
            self._ws.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
