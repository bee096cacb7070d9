"""rosbag2 bags written with `rosbags`, split by size or duration, each made visible only once complete.

    writer = SplitWriter(SplitOptions(Path("runs/drive_bag"), max_bytes=2**30))
    writer.add_topic("/LIDAR_TOP", "sensor_msgs/msg/PointCloud2", [qos])
    writer.write("/LIDAR_TOP", receive_time_ns, cdr_bytes)
    bags = writer.close()

Layout: without a split limit, `out` is the bag folder. With `max_bytes` or `max_duration_ns`, `out` is a
folder of bags `<out>/<name>_0`, `<out>/<name>_1`, ..., each a complete rosbag2 bag with every topic's
connection (and its offered QoS) and, at its start (stamped with its first message's time), the last
message of each latched topic (transient local, such as CameraInfo and /tf_static) seen so far, so that
each split carries the rig and the intrinsics on its own. The first bag is opened at once; a split
starts when the next message would take the current one past `max_bytes` (payload bytes) or
`max_duration_ns` (receive time since its first message); a single message larger than the limit
still goes into a split of its own.

Atomicity: each bag is written as `.<name>.partial/<name>` beside its final name (so the storage file
inside is already `<name>.mcap`) and moved to the final name only after rosbags closed it (metadata
written), so a bag folder under its final name is always complete. `close()` finishes the current bag;
a process killed before leaves only the `.partial` folder.
Errors (`RecordingError`): the output or a partial folder already exists; a message type the type store
does not define (its definition goes into the bag).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError

from tacocc_core.bags.messages import TYPESTORE

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BAG_VERSION: Literal[8, 9] = 8  # metadata version 8: what rosbag2 from Jazzy on reads
PARTIAL_SUFFIX = ".partial"


class RecordingError(ValueError):
    """An output that cannot be written, or a topic that cannot be recorded (names the path or topic)."""


@dataclass(frozen=True)
class SplitOptions:
    """Where and how to write.

    Args:
        out: the bag folder, or with a split limit the folder of split bags (must not exist).
        storage: "mcap" or "sqlite3".
        max_bytes: start a new bag past this many payload bytes (0: no limit).
        max_duration_ns: start a new bag past this much receive time (0: no limit).
    """

    out: Path
    storage: str = "mcap"
    max_bytes: int = 0
    max_duration_ns: int = 0

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise RecordingError(f"storage must be one of {', '.join(STORAGES)}, got {self.storage!r}")
        if self.max_bytes < 0 or self.max_duration_ns < 0:
            raise RecordingError(f"split limits must be >= 0, got {self.max_bytes} B, {self.max_duration_ns} ns")

    @property
    def splits(self) -> bool:
        return self.max_bytes > 0 or self.max_duration_ns > 0


def partial_path(final: Path) -> Path:
    """The staging folder of the bag that becomes `final`: the bag is written in it until it is closed."""
    return final.parent / f".{final.name}{PARTIAL_SUFFIX}"


@dataclass
class _Topic:
    msgtype: str
    qos: tuple[Qos, ...]
    latched: bool
    last: bytes | None = None  # the latest CDR message of a latched topic


class SplitWriter:
    """Writes messages into one bag or a series of split bags (see the module docstring). Not thread-safe."""

    def __init__(self, options: SplitOptions) -> None:
        self.options = options
        out = Path(options.out)
        if out.exists():
            raise RecordingError(f"{out}: exists already (choose another output or remove it)")
        if partial_path(out).exists():
            raise RecordingError(f"{partial_path(out)}: a recording was interrupted here; remove it first")
        self.out = out
        self.bags: list[Path] = []
        self._topics: dict[str, _Topic] = {}
        self._writer: Writer | None = None
        self._final: Path | None = None
        self._connections: dict[str, Connection] = {}
        self._bytes = 0
        self._start_ns: int | None = None
        self._index = 0
        if options.splits:
            out.mkdir(parents=True)
        self._open(0)

    @property
    def partial(self) -> Path | None:
        """The staging folder of the bag being written, or None between bags."""
        return None if self._final is None else partial_path(self._final)

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos]) -> None:
        """Record `topic` of type `msgtype` (`pkg/msg/Name`) offered with `qos`; RecordingError for an unknown type."""
        if topic in self._topics:
            return
        if msgtype not in TYPESTORE.types:
            raise RecordingError(f"{topic}: message type {msgtype} is unknown to the bag writer's type store")
        latched = bool(qos) and all(q.durability.name == "TRANSIENT_LOCAL" for q in qos)
        self._topics[topic] = _Topic(msgtype, tuple(qos), latched)
        if self._writer is not None:
            self._connect(topic)

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Write one message (CDR bytes) of a topic added before, at receive time `timestamp_ns`."""
        info = self._topics[topic]
        if self._writer is None:
            raise RecordingError(f"{self.out}: closed")
        if self._full(timestamp_ns, len(data)):
            self._close_current()
            self._open(timestamp_ns)
        assert self._writer is not None
        if self._start_ns is None:
            self._start_ns = timestamp_ns
        self._writer.write(self._connections[topic], timestamp_ns, data)
        self._bytes += len(data)
        if info.latched:
            info.last = bytes(data)

    def close(self) -> list[Path]:
        """Finish the bag being written (an empty one when nothing came); every complete bag's folder."""
        if self._writer is not None:
            self._close_current()
        return list(self.bags)

    def discard(self) -> None:
        """Drop the bag being written (its staging folder is removed); complete bags stay."""
        if self._writer is None or self._final is None:
            return
        writer, staging = self._writer, partial_path(self._final)
        self._writer, self._final = None, None
        writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        if self.options.splits and not self.bags:
            shutil.rmtree(self.out, ignore_errors=True)

    # --- internals -----------------------------------------------------------------------------------
    def _full(self, timestamp_ns: int, size: int) -> bool:
        if self._start_ns is None:
            return False
        o = self.options
        over_size = o.max_bytes > 0 and self._bytes + size > o.max_bytes
        over_time = o.max_duration_ns > 0 and timestamp_ns - self._start_ns >= o.max_duration_ns
        return over_size or over_time

    def _open(self, stamp_ns: int) -> None:
        """Start the next bag; the latched topics' last messages go first, at `stamp_ns` (the split's start)."""
        final = self.out / f"{self.out.name}_{self._index}" if self.options.splits else self.out
        self._index += 1
        partial = partial_path(final)
        if final.exists() or partial.exists():
            raise RecordingError(f"{final}: exists already")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.mkdir()
        writer = Writer(partial / final.name, version=BAG_VERSION, storage_plugin=STORAGES[self.options.storage])
        try:
            writer.open()
        except (WriterError, OSError) as err:
            raise RecordingError(f"{partial}: {err}") from None
        self._writer, self._final = writer, final
        self._connections, self._bytes, self._start_ns = {}, 0, None
        for topic in self._topics:
            self._connect(topic)
        for topic, info in self._topics.items():
            if info.last is not None:
                self._writer.write(self._connections[topic], stamp_ns, info.last)

    def _connect(self, topic: str) -> None:
        assert self._writer is not None
        info = self._topics[topic]
        self._connections[topic] = self._writer.add_connection(
            topic, info.msgtype, typestore=TYPESTORE, offered_qos_profiles=list(info.qos)
        )

    def _close_current(self) -> None:
        assert self._writer is not None and self._final is not None
        writer, final = self._writer, self._final
        self._writer, self._final = None, None
        writer.close()
        staging = partial_path(final)
        os.replace(staging / final.name, final)
        staging.rmdir()
        self.bags.append(final)
