"""tacocc_ros/bags/player.py (`tacocc play`): a converted bag over real DDS, timing, loop + Ctrl-C, bad bags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes  # noqa: E402
from tacocc_core.bags.messages import TYPESTORE  # noqa: E402
from tacocc_core.bags.reading import BagReader  # noqa: E402
from tacocc_ros.bags.player import BagPlayer, PlayOptions, message_class  # noqa: E402
from tacocc_ros.cli import main  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]
HAVE_TF2_MSGS = message_class("tf2_msgs/msg/TFMessage") is not None


@pytest.fixture(scope="module")
def bag(synthetic_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags")
    [path] = convert_nuscenes(synthetic_dataset, "v1.0-mini", out, ["synth-0003-0001"], ConvertOptions(progress=False))
    return path


@pytest.fixture(scope="module")
def recorded(bag) -> dict[str, list[tuple[int, bytes]]]:
    """Per topic, (stamp, CDR bytes) in bag order."""
    out: dict[str, list] = {}
    with BagReader(bag) as reader:
        for msg in reader.messages():
            out.setdefault(msg.topic, []).append((msg.stamp_ns, msg.data))
    return out


class Listener:
    """Raw subscriptions to every topic of a bag, spun on a thread; keeps (receive order, bytes) per topic."""

    def __init__(self, topics: dict[str, str]) -> None:
        self.node = rclpy.create_node("play_listener")
        self.received: dict[str, list[bytes]] = {t: [] for t in topics}
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msgtype in topics.items():
            cls = message_class(msgtype)
            self.node.create_subscription(
                cls, topic, lambda data, t=topic: self.received[t].append(data), qos, raw=True
            )
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._done.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()


def decoded(payloads: list[bytes], msgtype: str) -> list:
    """CDR payloads -> rclpy messages (DDS may pad a payload to 4 bytes, so the bytes themselves can differ)."""
    return [deserialize_message(data, message_class(msgtype)) for data in payloads]


def play_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tacocc_ros.cli", "play", *args]


def test_player_publishes_every_message_in_order_over_dds(bag, recorded):
    """In one process (two nodes, real DDS): every message of every importable topic, in order."""
    with BagReader(bag) as reader:
        topics = {t: i.msgtype for t, i in reader.topics.items() if message_class(i.msgtype) is not None}
    rclpy.init()
    try:
        listener = Listener(topics)
        node = rclpy.create_node("play_in_process")
        player = BagPlayer(node, bag, PlayOptions(rate=8.0, wait_subscribers_s=20.0, delay_s=0.5))
        try:
            report = player.play()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(len(listener.received[t]) < len(recorded[t]) for t in topics):
                time.sleep(0.05)
        finally:
            player.close()
            node.destroy_node()
            listener.close()
    finally:
        rclpy.try_shutdown()
    assert report.published == {t: len(recorded[t]) for t in topics}
    assert set(report.skipped) == ({"/tf_static"} if not HAVE_TF2_MSGS else set())
    for topic, msgtype in topics.items():
        assert decoded(listener.received[topic], msgtype) == decoded([d for _, d in recorded[topic]], msgtype), topic


def test_loop_replays_until_stopped(bag, recorded):
    rclpy.init()
    try:
        node = rclpy.create_node("play_loop")
        player = BagPlayer(node, bag, PlayOptions(rate=16.0, loop=True, topics=("/LIDAR_TOP",)))
        try:
            thread = threading.Thread(target=player.play)
            thread.start()
            deadline = time.monotonic() + 30
            while player.report.passes < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            player.stop()
            thread.join(10)
        finally:
            player.close()
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
    assert not thread.is_alive() and player.report.stopped
    assert player.report.passes >= 2
    assert player.report.published["/LIDAR_TOP"] >= 2 * len(recorded["/LIDAR_TOP"])


@pytest.mark.slow
def test_cli_play_reaches_a_subscriber_in_another_process(bag, recorded):
    with BagReader(bag) as reader:
        topics = {t: i.msgtype for t, i in reader.topics.items() if message_class(i.msgtype) is not None}
    rclpy.init()
    try:
        listener = Listener(topics)
        try:
            result = subprocess.run(
                play_command(str(bag), "--rate", "4", "--wait-subscribers", "20", "--delay", "1"),
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(len(listener.received[t]) < len(recorded[t]) for t in topics):
                time.sleep(0.05)
        finally:
            listener.close()
    finally:
        rclpy.try_shutdown()
    assert result.returncode == 0, result.stderr
    for topic, msgtype in topics.items():  # every message, in recorded order, equal field by field
        assert decoded(listener.received[topic], msgtype) == decoded([d for _, d in recorded[topic]], msgtype), topic
    assert "/occupancy/gt" in topics and len(listener.received["/occupancy/gt"]) == 4
    if not HAVE_TF2_MSGS:
        assert "topic /tf_static not published: message type tf2_msgs/msg/TFMessage is not installed" in result.stderr
    total = sum(len(recorded[t]) for t in topics)
    assert f"published {total} messages on {len(topics)} topics" in result.stderr


def test_play_keeps_recorded_timing_scaled_by_rate(bag, recorded):
    rclpy.init()
    try:
        node = rclpy.create_node("play_timing")
        player = BagPlayer(node, bag, PlayOptions(rate=4.0, topics=("/LIDAR_TOP", "/odom")))
        try:
            report = player.play()
            duration_s = player.reader.duration_ns / 1e9
        finally:
            player.close()
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
    assert report.published == {"/LIDAR_TOP": len(recorded["/LIDAR_TOP"]), "/odom": len(recorded["/odom"])}
    assert report.passes == 1 and not report.stopped
    lidar_span_s = (recorded["/LIDAR_TOP"][-1][0] - recorded["/odom"][0][0]) / 1e9
    assert duration_s >= lidar_span_s > 1.0
    assert report.wall_s >= 0.95 * lidar_span_s / 4.0  # never faster than the bag at 4x


@pytest.mark.slow
def test_cli_loop_restarts_and_ctrl_c_exits_cleanly(bag, recorded):
    rclpy.init()
    try:
        listener = Listener({"/LIDAR_TOP": "sensor_msgs/msg/PointCloud2"})
        try:
            proc = subprocess.Popen(
                play_command(
                    str(bag),
                    "--loop",
                    "--rate",
                    "8",
                    "--topics",
                    "/LIDAR_TOP",
                    "--wait-subscribers",
                    "20",
                    "--delay",
                    "1",
                ),
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                deadline = time.monotonic() + 40
                while len(listener.received["/LIDAR_TOP"]) < 2 * len(recorded["/LIDAR_TOP"]) + 1:
                    assert time.monotonic() < deadline, "the loop did not restart"
                    assert proc.poll() is None, proc.communicate()
                    time.sleep(0.05)
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
        finally:
            listener.close()
    finally:
        rclpy.try_shutdown()
    assert proc.returncode == 0, err
    assert "interrupted" in err and "Traceback" not in err
    one_pass = decoded([data for _, data in recorded["/LIDAR_TOP"]], "sensor_msgs/msg/PointCloud2")
    got = decoded(listener.received["/LIDAR_TOP"][: 2 * len(one_pass)], "sensor_msgs/msg/PointCloud2")
    assert got == one_pass + one_pass


def write_bag(path: Path, messages: list[tuple[str, str, int, bytes]], msgdefs: dict[str, str] | None = None) -> Path:
    """A small bag from (topic, type, stamp, CDR bytes); types outside the typestore need a msgdef."""
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for topic, msgtype, stamp, data in messages:
            if topic not in conns:
                if msgdefs and msgtype in msgdefs:
                    conns[topic] = writer.add_connection(
                        topic, msgtype, msgdef=msgdefs[msgtype], rihs01="RIHS01_" + "0" * 64
                    )
                else:
                    conns[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            writer.write(conns[topic], stamp, data)
    return path


def test_bad_bags_exit_with_status_2_and_name_the_problem(bag, recorded, tmp_path, capsys):
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for f in bag.iterdir():
        data = f.read_bytes()
        (truncated / f.name).write_bytes(data[: len(data) // 3] if f.suffix == ".mcap" else data)
    odom = "nav_msgs/msg/Odometry"
    (s0, good), (s1, _) = recorded["/odom"][:2]
    mangled = write_bag(tmp_path / "mangled", [("/odom", odom, s0, good), ("/odom", odom, s1, good[:40])])
    only_unknown = write_bag(
        tmp_path / "unknown", [("/blob", "tacocc_test_msgs/msg/Blob", s0, b"\x00\x01\x00\x00\x07\x00\x00\x00")],
        {"tacocc_test_msgs/msg/Blob": "uint32 value\n"},
    )  # fmt: skip
    cases = [
        ([str(tmp_path / "missing")], "missing: no such bag"),
        ([str(truncated)], f"{truncated}: not a readable rosbag2 bag"),
        ([str(bag), "--topics", "/CAM_TOP/image"], "no topic /CAM_TOP/image; the bag has"),
        ([str(mangled)], f"topic /odom: malformed {odom} at {s1} ns"),
        ([str(only_unknown)], "nothing to publish"),
    ]
    for args, message in cases:
        assert main(["play", *args]) == 2, args
        err = capsys.readouterr().err
        assert "tacocc play: error:" in err and message in err, (args, err)
    if not HAVE_TF2_MSGS:  # an unknown type among known ones is skipped with a warning, the rest plays
        mixed = write_bag(
            tmp_path / "mixed",
            [
                ("/tf_static", "tf2_msgs/msg/TFMessage", s0, b"\x00\x01\x00\x00\x00\x00\x00\x00"),
                ("/odom", odom, s0, good),
            ],
        )
        assert main(["play", str(mixed)]) == 0
        assert "published 1 messages on 1 topics" in capsys.readouterr().err


def test_tacocc_command_imports_no_ros_until_a_ros_command_runs():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = "import sys, tacocc_ros.cli as c; c.build_parser(); sys.exit('rclpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, timeout=60).returncode == 0


def test_bag_without_sensor_topics_plays_with_a_warning_naming_them(recorded, tmp_path, capfd):
    odom = "nav_msgs/msg/Odometry"
    only_odom = write_bag(tmp_path / "only_odom", [("/odom", odom, s, d) for s, d in recorded["/odom"][:3]])
    assert main(["play", str(only_odom), "--rate", "100"]) == 0
    err = capfd.readouterr().err
    assert "no topic /LIDAR_TOP (sensor_msgs/msg/PointCloud2)" in err
    assert "no topic /CAM_BACK/camera_info (sensor_msgs/msg/CameraInfo)" in err
    assert "published 3 messages on 1 topics" in err
