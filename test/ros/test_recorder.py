"""tacocc_ros.recording.recorder over real DDS: QoS matched to the publishers, late topics, splits, drops, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from nav_msgs.msg import Goals
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from std_msgs.msg import String

from tacocc_core.bags.messages import TYPESTORE
from tacocc_ros.commands import record
from tacocc_ros.recording.recorder import Recorder, RecordOptions, summary_lines
from tacocc_ros.recording.split_writer import SplitOptions
from tacocc_ros.tooling.node_process import RosHandle

REPO = Path(__file__).resolve().parents[2]
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def ros():
    handles = {name: RosHandle(name) for name in ("rec_publisher", "rec_recorder")}
    yield handles
    for handle in handles.values():
        handle.close()


def wait_for(condition, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def read(bag: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with Reader(bag) as reader:
        for conn, _, data in reader.messages():
            out.setdefault(conn.topic, []).append(TYPESTORE.deserialize_cdr(data, conn.msgtype).data)
    return out


def test_latched_before_start_best_effort_late_and_unknown_topics(ros, tmp_path):
    pub = ros["rec_publisher"].node
    latched = pub.create_publisher(String, "/rec/latched", LATCHED)
    latched.publish(String(data="rig"))  # before the recorder exists: only a transient-local reader gets it
    best = pub.create_publisher(String, "/rec/best", BEST_EFFORT)
    pub.create_publisher(Goals, "/rec/goals", 10)  # a type the bag type store (Jazzy's) does not define
    topics = ("/rec/latched", "/rec/best", "/rec/late", "/rec/goals", "/rec/none")
    options = RecordOptions(topics, SplitOptions(tmp_path / "bag"), discovery_period_s=0.1)
    recorder = Recorder(ros["rec_recorder"].node, options)
    wait_for(lambda: recorder.stats["/rec/best"].qos and "/rec/goals" in recorder.not_recorded, what="discovery")
    late = pub.create_publisher(String, "/rec/late", RELIABLE)  # appears after the recorder started
    wait_for(lambda: recorder.stats["/rec/late"].qos, what="the late topic")
    wait_for(lambda: late.get_subscription_count() > 0, what="the late topic's match")
    sent = 0
    while recorder.stats["/rec/best"].messages < 5 or sent < 5:
        best.publish(String(data=f"b{sent}"))
        late.publish(String(data=f"l{sent}"))
        sent += 1
        time.sleep(0.02)
        assert sent < 500, "best-effort messages never recorded"
    wait_for(lambda: recorder.stats["/rec/late"].messages == sent, what="every reliable message")
    report = recorder.finish()
    got = read(tmp_path / "bag")
    assert got["/rec/latched"] == ["rig"]
    assert got["/rec/late"] == [f"l{i}" for i in range(sent)]
    assert len(got["/rec/best"]) >= 5
    assert report.not_recorded == {
        "/rec/goals": "message type nav_msgs/msg/Goals is unknown to the bag writer's type store",
        "/rec/none": "no publisher",
    }
    assert report.topics["/rec/latched"].qos == "reliable transient_local"
    assert report.topics["/rec/best"].qos == "best_effort volatile"
    with Reader(tmp_path / "bag") as reader:
        offered = {c.topic: c.ext.offered_qos_profiles[0] for c in reader.connections}
    assert offered["/rec/latched"].durability == QosDurability.TRANSIENT_LOCAL
    assert offered["/rec/latched"].reliability == QosReliability.RELIABLE
    assert offered["/rec/best"].reliability == QosReliability.BEST_EFFORT
    assert offered["/rec/late"].durability == QosDurability.VOLATILE
    assert any("/rec/none" in line and "no publisher" in line for line in summary_lines(report))


def test_split_by_size_gives_several_readable_bags_with_everything(ros, tmp_path):
    pub = ros["rec_publisher"].node
    rig = pub.create_publisher(String, "/rec/rig", LATCHED)
    rig.publish(String(data="rig"))
    blobs = pub.create_publisher(String, "/rec/blob", RELIABLE)
    options = RecordOptions(("/rec/rig", "/rec/blob"), SplitOptions(tmp_path / "split", max_bytes=25_000))
    recorder = Recorder(ros["rec_recorder"].node, options)
    wait_for(lambda: blobs.get_subscription_count() > 0 and recorder.stats["/rec/rig"].messages == 1, what="match")
    for i in range(12):
        blobs.publish(String(data=f"{i:02d}" + "x" * 10_000))
    wait_for(lambda: recorder.stats["/rec/blob"].messages == 12, what="12 blobs")
    bags = [Path(b) for b in recorder.finish().bags]
    assert len(bags) == 6 and all(b.parent == tmp_path / "split" for b in bags)
    assert not [p for p in (tmp_path / "split").iterdir() if p.name.startswith(".")]
    received = []
    for bag in bags:
        got = read(bag)
        assert got["/rec/rig"] == ["rig"], bag
        received += [text[:2] for text in got["/rec/blob"]]
    assert received == [f"{i:02d}" for i in range(12)]


def test_a_full_queue_drops_the_newest_and_counts_them(ros, tmp_path, capfd):
    pub = ros["rec_publisher"].node
    topic = pub.create_publisher(String, "/rec/flood", RELIABLE)
    options = RecordOptions(("/rec/flood",), SplitOptions(tmp_path / "flood"), queue_bytes=1)
    recorder = Recorder(ros["rec_recorder"].node, options)
    disk = threading.Event()  # a disk that stalls: the writer thread waits here before each message
    write = recorder.writer.write
    recorder.writer.write = lambda *args: (disk.wait(30), write(*args))  # type: ignore[method-assign]
    wait_for(lambda: topic.get_subscription_count() > 0, what="match")
    # The writer has taken the topic's control entry (size 0): an empty queue takes the first message whole.
    wait_for(lambda: len(recorder.queue) == 0, what="the writer to take the topic entry")
    for i in range(20):
        topic.publish(String(data=f"m{i}"))
    # The writer holds one message and the queue (1 byte) one more, or the writer has not taken the first yet.
    wait_for(lambda: recorder.stats["/rec/flood"].dropped >= 18, what="18 drops")
    time.sleep(0.3)
    disk.set()
    report = recorder.finish()
    flood = report.topics["/rec/flood"]
    assert flood.messages + flood.dropped == 20 and flood.dropped in (18, 19), flood
    written = read(tmp_path / "flood")["/rec/flood"]
    assert len(written) == flood.messages and written[0] == "m0"
    assert "dropped a message of /rec/flood: the write queue is full" in capfd.readouterr().err
    assert any(f"dropped {flood.dropped}" in line for line in summary_lines(report))


def test_sigint_closes_a_complete_bag_and_leaves_no_temporary_folder(ros, tmp_path):
    pub = ros["rec_publisher"].node
    topic = pub.create_publisher(String, "/rec/sig", RELIABLE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "sig"
    command = [sys.executable, "-m", "tacocc_ros.commands.record", "-o", str(out), "--topics", "/rec/sig"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: topic.get_subscription_count() > 0 or proc.poll() is not None, 60, "the recorder")
        assert proc.poll() is None, proc.communicate()
        assert [p.name for p in tmp_path.iterdir()] == [".sig.partial"]  # written under its temporary name
        for i in range(10):
            topic.publish(String(data=f"s{i}"))
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert [p.name for p in tmp_path.iterdir()] == ["sig"]
    assert read(out)["/rec/sig"] == [f"s{i}" for i in range(10)]
    assert "/rec/sig" in stdout and "10 msgs" in stdout and "dropped in total: 0" in stdout


def test_an_existing_output_is_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "bag").mkdir()
    assert record.main(["-o", str(tmp_path / "bag"), "--topics", "/x"]) == 1
    assert "bag: exists already" in capsys.readouterr().err
