"""Record topics into rosbag2 bags over rclpy, without a ROS install: the work of `tacocc record`.

    recorder = Recorder(node, RecordOptions(topics, SplitOptions(Path("runs/bag"))))
    ... spin `node` until asked to stop ...
    report = recorder.finish()

- Subscriptions are raw (`raw=True`): the callbacks get each message's CDR bytes, which go into the bag
  unchanged (what rosbag2 stores), never deserialised.
- QoS as rosbag2 records: each topic is subscribed once a publisher for it is seen (a timer retries the
  topics without one every `discovery_period_s`), with the profile adapted to the publishers' offers
  (`tacocc_ros.node.input_qos.adapted_profile`: reliable only when every publisher is, transient local
  only when every publisher is latched, so a latched CameraInfo or /tf_static sent before the recorder
  started is still received). The offered profiles go into the bag's metadata (`offered_qos_profiles`),
  from which `tacocc play` and `ros2 bag play` offer them again.
- Bounded memory: callbacks hand messages to a writer thread through a `ByteQueue` of `queue_bytes`;
  when it is full the newest message is dropped, counted per topic and logged (throttled, with counts).
- Bags: `SplitWriter` (split by size or duration; each bag written under a temporary name and renamed
  once complete).
- A topic whose type the bag writer does not know, or whose message package is not installed here (no
  subscription can be made), is not recorded: logged as an error and listed in the report.

The receive time (`time.time_ns()` in the callback) is each message's bag timestamp, as rosbag2 does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rclpy.qos import QoSProfile
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from tacocc_core.bags.messages import TYPESTORE
from tacocc_ros.bags.player import message_class
from tacocc_ros.node.input_qos import QosChoice, adapted_profile, describe
from tacocc_ros.node.log_throttle import LogThrottle
from tacocc_ros.recording.byte_queue import ByteQueue
from tacocc_ros.recording.split_writer import RecordingError, SplitOptions, SplitWriter

NS_PER_S = 1_000_000_000
MIB = 1 << 20


@dataclass(frozen=True)
class RecordOptions:
    """What and how to record.

    Args:
        topics: absolute topic names.
        split: the output and its split limits.
        queue_bytes: the most message bytes waiting for the writer (> 0); beyond, the newest are dropped.
        depth: history depth of each subscription.
        discovery_period_s: how often topics without a publisher are looked up again.
        log_throttle_s: one drop line per topic per this period, with the count of the others.
    """

    topics: tuple[str, ...]
    split: SplitOptions
    queue_bytes: int = 512 * MIB
    depth: int = 100
    discovery_period_s: float = 0.1  # as rosbag2 polls: what comes before the subscription is not recorded
    log_throttle_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.topics:
            raise RecordingError("no topic to record")
        if self.queue_bytes <= 0 or self.depth < 1 or not self.discovery_period_s > 0:
            raise RecordingError(
                f"queue_bytes, depth and discovery_period_s must be positive, got {self.queue_bytes}, "
                f"{self.depth}, {self.discovery_period_s}"
            )


@dataclass
class TopicStats:
    """One topic's recording: its type and QoS, messages and payload bytes written, messages dropped."""

    msgtype: str = ""
    qos: str = ""
    messages: int = 0
    bytes: int = 0
    dropped: int = 0


@dataclass
class RecordReport:
    """What a recording did (`summary_lines` prints it)."""

    bags: list[str] = field(default_factory=list)
    topics: dict[str, TopicStats] = field(default_factory=dict)
    not_recorded: dict[str, str] = field(default_factory=dict)  # topic -> why (no publisher, unknown type)
    peak_queue_bytes: int = 0
    duration_s: float = 0.0


def _time(ns: int) -> QosTime:
    return QosTime(ns // NS_PER_S, ns % NS_PER_S)


def _enum(cls: Any, value: int, fallback: Any) -> Any:
    try:
        return cls(int(value))
    except ValueError:
        return fallback


def bag_qos(profile: QoSProfile) -> Qos:
    """An rclpy QoS profile (a publisher's offer) as the rosbags `Qos` stored in a bag's metadata."""
    return Qos(
        history=_enum(QosHistory, profile.history, QosHistory.UNKNOWN),
        depth=int(profile.depth),
        reliability=_enum(QosReliability, profile.reliability, QosReliability.UNKNOWN),
        durability=_enum(QosDurability, profile.durability, QosDurability.UNKNOWN),
        deadline=_time(profile.deadline.nanoseconds),
        lifespan=_time(profile.lifespan.nanoseconds),
        liveliness=_enum(QosLiveliness, profile.liveliness, QosLiveliness.UNKNOWN),
        liveliness_lease_duration=_time(profile.liveliness_lease_duration.nanoseconds),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


class Recorder:
    """Subscribes `options.topics` on `node` and writes them to bags (see the module docstring).

    `writer` is the bag writer of `options.split`, when the caller opened it already (so that an unusable
    output is refused before ROS starts); None opens it here.

    The caller spins `node` (the callbacks and the discovery timer run there) and calls `finish()` once.
    `error` holds the writer thread's failure (a full disk), if any; `failed` is set with it.
    """

    def __init__(self, node: Any, options: RecordOptions, writer: SplitWriter | None = None) -> None:
        self.node, self.options = node, options
        self.writer = writer if writer is not None else SplitWriter(options.split)
        self.queue = ByteQueue(options.queue_bytes)
        self.stats: dict[str, TopicStats] = {t: TopicStats() for t in options.topics}
        self.not_recorded: dict[str, str] = {}
        self.error: BaseException | None = None
        self.failed = threading.Event()
        self._pending = list(options.topics)
        self._subscriptions: list[Any] = []
        self._throttle = LogThrottle(round(options.log_throttle_s * NS_PER_S))
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._write_loop, name="tacocc-record-writer", daemon=True)
        self._thread.start()
        self.discover()
        self._timer = node.create_timer(options.discovery_period_s, self._on_timer)

    # --- discovery -----------------------------------------------------------------------------------
    def discover(self) -> None:
        """Subscribe each topic still without a subscription that now has a publisher."""
        for topic in list(self._pending):
            publishers = list(self.node.get_publishers_info_by_topic(topic))
            if not publishers:
                continue
            self._pending.remove(topic)
            msgtype = publishers[0].topic_type
            others = sorted({p.topic_type for p in publishers} - {msgtype})
            if others:
                self.node.get_logger().warning(f"{topic}: publishers of {', '.join(others)} too; recording {msgtype}")
            offered = [p.qos_profile for p in publishers if p.topic_type == msgtype]
            cls = message_class(msgtype)
            if cls is None:
                self._refuse(topic, f"message type {msgtype}: its package is not installed here")
                continue
            try:
                self._register(topic, msgtype, offered)
            except RecordingError as err:
                self._refuse(topic, str(err).removeprefix(f"{topic}: "))
                continue
            profile = adapted_profile(offered, QosChoice("auto", "auto", self.options.depth))
            self.stats[topic].msgtype, self.stats[topic].qos = msgtype, describe(profile)
            self._subscriptions.append(
                self.node.create_subscription(
                    cls, topic, lambda data, t=topic: self._on_message(t, data), profile, raw=True
                )
            )
            self.node.get_logger().info(f"recording {topic} ({msgtype}, {describe(profile)})")

    def _register(self, topic: str, msgtype: str, offered: list[QoSProfile]) -> None:
        """Check the type now (a clear error) and register the topic with the writer thread, in order."""
        if msgtype not in TYPESTORE.types:
            raise RecordingError(f"{topic}: message type {msgtype} is unknown to the bag writer's type store")
        self.queue.put(("topic", topic, msgtype, [bag_qos(q) for q in offered]), 0, force=True)

    def _refuse(self, topic: str, why: str) -> None:
        self.not_recorded[topic] = why
        self.node.get_logger().error(f"not recording {topic}: {why}")

    def _on_timer(self) -> None:
        if self._pending:
            self.discover()
        for line in self._throttle.flush(time.monotonic_ns()):
            self.node.get_logger().warning(line)

    # --- messages ------------------------------------------------------------------------------------
    def _on_message(self, topic: str, data: bytes) -> None:
        stamp = time.time_ns()
        if self.queue.put(("msg", topic, stamp, data), len(data)):
            return
        with self._lock:
            self.stats[topic].dropped += 1
        line = self._throttle.report(
            f"queue full {topic}",
            f"dropped a message of {topic}: the write queue is full ({self.queue.max_bytes / MIB:.0f} MiB)",
            time.monotonic_ns(),
        )
        if line is not None:
            self.node.get_logger().warning(line)

    def _write_loop(self) -> None:
        try:
            while True:
                item = self.queue.get(timeout_s=0.5)
                if item is None:
                    if self.queue.closed_and_empty:
                        return
                    continue
                if item[0] == "topic":
                    self.writer.add_topic(item[1], item[2], item[3])
                    continue
                _, topic, stamp, data = item
                self.writer.write(topic, stamp, data)
                with self._lock:
                    self.stats[topic].messages += 1
                    self.stats[topic].bytes += len(data)
        except BaseException as err:  # noqa: BLE001 - reported by finish() and the caller's loop
            self.error = err
            self.failed.set()

    # --- the end -------------------------------------------------------------------------------------
    def finish(self) -> RecordReport:
        """Stop receiving, write what is queued, close the bag (renamed to its final name); the report.

        Raises the writer thread's error (RecordingError or OSError), if it had one; the bag being
        written then stays under its temporary name.
        """
        self.node.destroy_timer(self._timer)
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions.clear()
        self.queue.close()
        self._thread.join()
        if self.error is not None:
            raise self.error
        bags = self.writer.close()
        for topic in self._pending:
            self.not_recorded.setdefault(topic, "no publisher")
        return RecordReport(
            bags=[str(b) for b in bags],
            topics={t: s for t, s in self.stats.items() if t not in self.not_recorded},
            not_recorded=dict(self.not_recorded),
            peak_queue_bytes=self.queue.peak_bytes,
            duration_s=time.monotonic() - self._started,
        )


def summary_lines(report: RecordReport) -> list[str]:
    """The report in a few lines: each topic's messages, MiB and drops, what was not recorded, the bags."""
    lines = [f"recorded {report.duration_s:.1f} s into {len(report.bags)} bag(s):"]
    lines += [f"  {bag}" for bag in report.bags]
    width = max((len(t) for t in report.topics), default=5)
    for topic, s in report.topics.items():
        lines.append(
            f"  {topic:<{width}}  {s.messages:6d} msgs  {s.bytes / MIB:9.2f} MiB  dropped {s.dropped}  "
            f"{s.msgtype} ({s.qos})"
        )
    for topic, why in report.not_recorded.items():
        lines.append(f"  {topic:<{width}}  not recorded: {why}")
    total = sum(s.dropped for s in report.topics.values())
    lines.append(f"dropped in total: {total} (write queue peak {report.peak_queue_bytes / MIB:.1f} MiB)")
    return lines
