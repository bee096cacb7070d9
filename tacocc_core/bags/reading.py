"""Open and check rosbag2 bags (mcap or sqlite3) with `rosbags`; every failure names the bag and topic.

`BagReader(path)` wraps `rosbags.rosbag2.Reader`: a missing, truncated or corrupt bag raises `BagError`
when opened or, for damage found later, while its messages are read (naming the last good stamp);
`decode` deserialises one message with the project's typestore and turns a malformed or unknown
message into a BagError naming the topic and stamp. `sensor_topic_problems` lists what a bag lacks
for the occupancy node (a camera image or camera_info topic, the LiDAR) under the topic names of a
`SensorTopics` (the node's parameters), each line naming the parameter to set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import Qos
from rosbags.rosbag2 import Reader

from tacocc_core.bags.messages import TYPESTORE
from tacocc_core.bags.topics import SensorTopics, resolve_image_topic


class BagError(ValueError):
    """A bag that cannot be read, or a message or topic in it that is not what is expected."""


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: type name ("sensor_msgs/msg/PointCloud2"), message count, offered QoS profiles."""

    name: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...]


@dataclass(frozen=True)
class RawMessage:
    """One message as stored: CDR bytes (with the 4-byte encapsulation header) at a receive time."""

    topic: str
    msgtype: str
    stamp_ns: int
    data: bytes


class BagReader:
    """An opened bag; use as a context manager or call `close()`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (expected a rosbag2 folder, .mcap or .db3 file)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as err:  # noqa: BLE001 - damaged indexes raise assorted errors (a flipped length: MemoryError)
            raise BagError(f"{self.path}: not a readable rosbag2 bag ({type(err).__name__}: {err})") from None
        self.topics: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            known = self.topics.get(conn.topic)
            if known is not None and known.msgtype != conn.msgtype:
                raise BagError(f"{self.path}: topic {conn.topic} has two types, {known.msgtype} and {conn.msgtype}")
            qos = tuple(getattr(conn.ext, "offered_qos_profiles", ()) or ())
            count = conn.msgcount + (known.count if known else 0)
            self.topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count, qos)

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def duration_ns(self) -> int:
        return int(self._reader.duration)

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        """Messages of `topics` (default all) in receive-time order; unknown topic names raise BagError."""
        wanted = self.select_topics(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        last = None
        try:
            for conn, stamp, data in self._reader.messages(connections=connections):
                last = stamp
                yield RawMessage(conn.topic, conn.msgtype, int(stamp), bytes(data))
        except Exception as err:  # the storage readers raise assorted errors on damaged bytes; all mean corrupt
            where = f"after the message at {last} ns" if last is not None else "before the first message"
            raise BagError(f"{self.path}: corrupt or truncated bag, {where} ({type(err).__name__}: {err})") from None

    def select_topics(self, topics: Iterable[str] | None) -> set[str]:
        if topics is None:
            return set(self.topics)
        wanted = set(topics)
        unknown = sorted(wanted - set(self.topics))
        if unknown:
            raise BagError(f"{self.path}: no topic {', '.join(unknown)}; the bag has {', '.join(sorted(self.topics))}")
        return wanted

    def decode(self, msg: RawMessage):
        """CDR bytes -> a rosbags message dataclass; BagError for an unknown type or a malformed message."""
        if msg.msgtype not in TYPESTORE.types:
            raise BagError(f"{self.path}: topic {msg.topic} has message type {msg.msgtype}, which is not known here")
        try:
            return TYPESTORE.deserialize_cdr(msg.data, msg.msgtype)
        except Exception as err:  # the deserialiser raises assorted errors on bad bytes; all mean "malformed"
            raise BagError(
                f"{self.path}: topic {msg.topic}: malformed {msg.msgtype} at {msg.stamp_ns} ns "
                f"({type(err).__name__}: {err})"
            ) from None

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


IMAGE_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image")


def image_topics(topics: Iterable[str], cameras: Sequence[str], names: SensorTopics | None = None) -> dict[str, str]:
    """{camera: its image topic among a bag's `topics`}.

    The name of `names` (default `/<CAM>/image_rect/compressed`), or its older `<base>_compressed` form
    where only that one is there (the name of `names` when neither is).
    """
    names = names or SensorTopics()
    available = set(topics)
    return {camera: resolve_image_topic(available, names.image(camera)) or names.image(camera) for camera in cameras}


def sensor_topic_problems(
    topics: dict[str, TopicInfo], cameras: Sequence[str], names: SensorTopics | None = None, where: str = "the bag"
) -> list[str]:
    """What the occupancy node would miss in a bag: one line per absent or mistyped sensor topic.

    Each line names the topic, the type(s) it needs, `where` (the bag) and the parameter that sets it:
    "no topic /cam_front/image_raw (sensor_msgs/msg/Image or CompressedImage) in BAG; set
    cameras.CAM_FRONT.image_topic".
    """
    names = names or SensorTopics()
    expected: dict[str, tuple[tuple[str, ...], str]] = {names.lidar: (("sensor_msgs/msg/PointCloud2",), "lidar_topic")}
    images = image_topics(topics, cameras, names)
    for camera in cameras:
        expected[images[camera]] = (IMAGE_TYPES, names.param_of("image", camera))
        expected[names.info(camera)] = (("sensor_msgs/msg/CameraInfo",), names.param_of("info", camera))
    problems = []
    for topic, (msgtypes, param) in expected.items():
        wanted = "sensor_msgs/msg/Image or CompressedImage" if msgtypes == IMAGE_TYPES else msgtypes[0]
        if topic not in topics:
            problems.append(f"no topic {topic} ({wanted}) in {where}; set {param}")
        elif topics[topic].msgtype not in msgtypes:
            problems.append(
                f"topic {topic} in {where} has type {topics[topic].msgtype}, expected {wanted}; set {param}"
            )
        elif topics[topic].count == 0:
            problems.append(f"topic {topic} in {where} has no messages; set {param}")
    return problems


def require_sensor_topics(reader: BagReader, cameras: Sequence[str], names: SensorTopics | None = None) -> None:
    """Raise BagError naming the bag, every missing camera, camera_info or LiDAR topic and its parameter."""
    problems = sensor_topic_problems(reader.topics, cameras, names, str(reader.path))
    if problems:
        raise BagError("\n".join(problems))
