"""Replay a rosbag2 bag into DDS with rclpy at its recorded timing: `tacocc play` (no `ros2 bag play` needed).

The bag is read with `rosbags` (`tacocc_core.bags.reading.BagReader`). Each message's CDR bytes are
checked by deserialising them into the installed rclpy message class (`rclpy.serialization.deserialize_message`,
so a malformed message stops the replay with an error naming topic and stamp instead of reaching
subscribers) and then published as those same bytes (`Publisher.publish(bytes)`), as rosbag2's player
does: no re-serialisation, byte-identical payloads.

Timing: the message recorded at bag time t is sent at wall time t0 + (t - bag start) / rate. QoS: each
topic is offered with the reliability and durability recorded in the bag (the first profile if several
were recorded) and a history of at least MIN_DEPTH (a reliable publisher with depth 1 drops a message
that a slow subscriber has not yet acknowledged when the next one is published); without a profile,
/tf_static gets reliable + transient-local and every other topic reliable + volatile (what a camera or
LiDAR driver offers; best-effort subscribers match it too). Topics whose message package is not
importable here (tf2_msgs is not among the PyPI ROS wheels) are skipped with a warning; the calibration
file written beside converted bags carries the same transforms.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.interfaces import QosDurability, QosHistory, QosReliability

from tacocc_core.bags.reading import BagError, BagReader, TopicInfo, sensor_topic_problems
from tacocc_core.bags.topics import TF_STATIC_TOPIC
from tacocc_core.config import NUSCENES_CAMERAS
from tacocc_core.rig.calibration_file import CalibrationError, load_calibration
from tacocc_ros.messages.transport import large_message_environment


@dataclass(frozen=True)
class PlayOptions:
    """How to replay.

    Args:
        rate: playback speed factor (2.0 = twice as fast); > 0.
        loop: start again from the beginning at the end, until stopped.
        topics: topics to publish (None: all the bag has).
        wait_subscribers_s: first wait up to this long until every topic has a matched subscriber (a warning
            names the topics still without one when the time is up); 0 does not wait.
        delay_s: then wait this long before the first message, so that the subscribers' side of discovery
            completes too (a volatile subscriber drops what arrives before it has matched the publisher).
        ack_timeout_s: at the end, wait up to this long until reliable subscribers have acknowledged every
            message (what would otherwise be lost when the process exits right after the last publish).
    """

    rate: float = 1.0
    loop: bool = False
    topics: tuple[str, ...] | None = None
    delay_s: float = 0.0
    wait_subscribers_s: float = 0.0
    ack_timeout_s: float = 5.0

    def validate(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"play: rate must be > 0, got {self.rate}")
        if self.delay_s < 0 or self.wait_subscribers_s < 0:
            raise ValueError(f"play: waits must be >= 0 s, got {self.delay_s} and {self.wait_subscribers_s}")


@dataclass
class PlayReport:
    """What a replay did: messages published per topic, topics skipped (with why), passes, wall time."""

    published: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    passes: int = 0
    wall_s: float = 0.0
    stopped: bool = False


def message_class(msgtype: str) -> type | None:
    """'sensor_msgs/msg/Image' -> the installed rclpy class, or None when its package is not importable."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        return None
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


MIN_DEPTH = 10
_HISTORY = {QosHistory.KEEP_ALL: QoSHistoryPolicy.KEEP_ALL}
_RELIABILITY = {QosReliability.BEST_EFFORT: QoSReliabilityPolicy.BEST_EFFORT}
_DURABILITY = {QosDurability.TRANSIENT_LOCAL: QoSDurabilityPolicy.TRANSIENT_LOCAL}


def qos_for(info: TopicInfo) -> QoSProfile:
    """The profile to offer on a topic: the recorded one, else the defaults of the module docstring."""
    latched = info.name == TF_STATIC_TOPIC
    if not info.qos:
        durability = QoSDurabilityPolicy.TRANSIENT_LOCAL if latched else QoSDurabilityPolicy.VOLATILE
        return QoSProfile(depth=MIN_DEPTH, reliability=QoSReliabilityPolicy.RELIABLE, durability=durability)
    recorded = info.qos[0]
    return QoSProfile(
        history=_HISTORY.get(recorded.history, QoSHistoryPolicy.KEEP_LAST),
        depth=max(int(recorded.depth), MIN_DEPTH),
        reliability=_RELIABILITY.get(recorded.reliability, QoSReliabilityPolicy.RELIABLE),
        durability=_DURABILITY.get(recorded.durability, QoSDurabilityPolicy.VOLATILE),
    )


class BagPlayer:
    """Publishes one bag through `node`; `play()` blocks until the end (or forever with loop) or `stop()`."""

    def __init__(self, node: Node, bag: str | Path, options: PlayOptions | None = None) -> None:
        self.options = options or PlayOptions()
        self.options.validate()
        self.node = node
        self.reader = BagReader(bag)
        self._stop = threading.Event()
        self.report = PlayReport()
        wanted = self.reader.select_topics(self.options.topics)
        self.publishers: dict[str, Publisher] = {}
        self.classes: dict[str, type] = {}
        for topic in sorted(wanted):
            info = self.reader.topics[topic]
            cls = message_class(info.msgtype)
            if cls is None:
                package = info.msgtype.split("/")[0]
                why = f"message type {info.msgtype} is not installed here (no Python package {package})"
                self.report.skipped[topic] = why
                node.get_logger().warning(f"{self.reader.path}: topic {topic} not published: {why}")
                continue
            self.classes[topic] = cls
            self.publishers[topic] = node.create_publisher(cls, topic, qos_for(info))
            self.report.published[topic] = 0
        if not self.publishers:
            raise BagError(f"{self.reader.path}: nothing to publish; skipped {self.report.skipped}")

    def stop(self) -> None:
        """Ask `play()` to return after the message it is on (thread-safe)."""
        self._stop.set()

    def play(self) -> PlayReport:
        """Publish at recorded timing; returns the report. BagError on a corrupt bag or malformed message."""
        opts = self.options
        start = time.monotonic()
        if opts.wait_subscribers_s:
            self._wait_for_subscribers(opts.wait_subscribers_s)
        if opts.delay_s:
            self._stop.wait(opts.delay_s)
        while not self._stop.is_set():
            self._one_pass()
            self.report.passes += 1
            if not opts.loop:
                break
        self.report.stopped = self._stop.is_set()
        if not self.report.stopped:
            for publisher in self.publishers.values():
                publisher.wait_for_all_acked(Duration(nanoseconds=int(opts.ack_timeout_s * 1e9)))
        self.report.wall_s = time.monotonic() - start
        return self.report

    def _wait_for_subscribers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        lonely = list(self.publishers)
        while lonely and not self._stop.is_set():
            lonely = [t for t, pub in self.publishers.items() if pub.get_subscription_count() == 0]
            if lonely and time.monotonic() >= deadline:
                self.node.get_logger().warning(f"no subscriber after {timeout_s:.1f} s on {', '.join(lonely)}")
                return
            self._stop.wait(0.02)

    def _one_pass(self) -> None:
        t0, bag_start = time.monotonic(), self.reader.start_ns
        for msg in self.reader.messages(self.publishers):
            due = t0 + (msg.stamp_ns - bag_start) / 1e9 / self.options.rate
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait) or self._stop.is_set():
                return
            try:
                deserialize_message(msg.data, self.classes[msg.topic])
            except Exception as err:  # rclpy raises RMWError (not exported) for bytes that do not decode
                raise BagError(
                    f"{self.reader.path}: topic {msg.topic}: malformed {msg.msgtype} at {msg.stamp_ns} ns ({err})"
                ) from None
            self.publishers[msg.topic].publish(msg.data)
            self.report.published[msg.topic] += 1

    def close(self) -> None:
        for publisher in self.publishers.values():
            self.node.destroy_publisher(publisher)
        self.reader.close()


def warn_missing_sensors(node: Node, reader: BagReader) -> None:
    """Warn (not fail) when the bag lacks a topic the occupancy node needs; cameras from calibration.yaml."""
    cameras: tuple[str, ...] = NUSCENES_CAMERAS
    if reader.path.is_dir():
        try:
            cameras = tuple(load_calibration(reader.path, note=node.get_logger().warning).cameras)
        except CalibrationError:
            pass
    for problem in sensor_topic_problems(reader.topics, cameras):
        node.get_logger().warning(f"{reader.path}: {problem}; the occupancy node will not get complete frames")


def run_play(args: argparse.Namespace) -> int:
    """`tacocc play` (arguments as `tacocc_ros.commands.play` defines them)."""
    import rclpy

    options = PlayOptions(
        rate=args.rate,
        loop=args.loop,
        topics=tuple(args.topics) if args.topics else None,
        delay_s=args.delay,
        wait_subscribers_s=args.wait_subscribers,
    )
    os.environ.update(large_message_environment(os.environ))  # before the first participant: see transport.py
    rclpy.init()
    node, player = None, None
    try:
        node = rclpy.create_node("tacocc_play")
        player = BagPlayer(node, args.bag, options)
        warn_missing_sensors(node, player.reader)
        report = player.play()
        total = sum(report.published.values())
        print(f"published {total} messages on {len(report.published)} topics in {report.wall_s:.1f} s", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print("tacocc play: interrupted", file=sys.stderr)
        return 0
    except (BagError, ValueError) as err:
        print(f"tacocc play: error: {err}", file=sys.stderr)
        return 2
    finally:
        if player is not None:
            player.close()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
