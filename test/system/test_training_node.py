"""tacocc_ros.training.training_node: fine-tunes on a converted bag as a process over DDS, resumes, rejects bad bags."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader, Writer
from std_msgs.msg import String

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
from tacocc_core.bags.messages import TYPESTORE
from tacocc_core.checkpoint import load_checkpoint
from tacocc_core.config import load_preset

REPO = Path(__file__).resolve().parents[2]
TRAIN_YAML = REPO / "config" / "train_tiny.yaml"


@pytest.fixture(scope="module")
def bag(synthetic_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train_bags")
    return convert_nuscenes(synthetic_dataset, "v1.0-mini", out, options=ConvertOptions(progress=False))[0]


def copy_without(bag: Path, out: Path, prefix: str) -> Path:
    """The bag with every topic starting with `prefix` left out (calibration.yaml copied)."""
    with Reader(bag) as src, Writer(out, version=8) as dst:
        conns = {
            c.id: dst.add_connection(c.topic, c.msgtype, typestore=TYPESTORE)
            for c in src.connections
            if not c.topic.startswith(prefix)
        }
        for c, stamp, data in src.messages():
            if c.id in conns:
                dst.write(conns[c.id], stamp, data)
    shutil.copy(bag / "calibration.yaml", out / "calibration.yaml")
    return out


def command(bag: Path, out_dir: Path, steps: int, interval: int, *extra: str) -> list[str]:
    params = {
        "bags": f"['{bag}']",
        "model_config": "tiny",
        "train_config": str(TRAIN_YAML),
        "out_dir": str(out_dir),
        "steps": str(steps),
        "checkpoint_interval": str(interval),
        "mode": "supervised",
    }
    args = [sys.executable, "-m", "tacocc_ros.training.training_node", "--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    for item in extra:
        args += ["-p", item]
    return args


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "RCUTILS_LOGGING_BUFFERED_STREAM": "0"}


def progress_lines(text: str) -> list[dict]:
    return [json.loads(line.split("progress ", 1)[1]) for line in text.splitlines() if "progress {" in line]


@pytest.mark.slow
def test_loss_goes_down_and_progress_is_published(bag, tmp_path):
    rclpy.init()
    node = None
    received: list[dict] = []
    try:
        node = rclpy.create_node("progress_listener")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(String, "/training_node/progress", lambda m: received.append(json.loads(m.data)), qos)
        proc = subprocess.Popen(
            command(bag, tmp_path / "run", 6, 3), env=environment(), stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        logged = progress_lines(err)
        assert [p["step"] for p in logged] == [1, 2, 3, 4, 5, 6]
        assert logged[-1]["loss"] < logged[0]["loss"], [p["loss"] for p in logged]
        assert all(p["frames_per_s"] > 0 for p in logged)
        assert logged[2]["checkpoint"] == str(tmp_path / "run" / "latest.pt")
        assert load_checkpoint(tmp_path / "run" / "latest.pt", expected=load_preset("tiny"))["step"] == 6
        end = time.monotonic() + 5
        while not received and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert received and received[-1]["step"] in range(1, 7)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


@pytest.mark.slow
def test_killed_after_a_checkpoint_resumes_from_it(bag, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(command(bag, run, 8, 2), env=environment(), stderr=subprocess.PIPE, text=True)
    try:
        saved = None
        for line in proc.stderr:
            if "progress {" in line and progress_lines(line)[0]["checkpoint"]:
                saved = progress_lines(line)[0]["step"]
                break
        assert saved is not None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    step = load_checkpoint(run / "latest.pt", expected=load_preset("tiny"))["step"]
    assert step >= saved
    assert not [p for p in run.iterdir() if p.name != "latest.pt"], "a partial file was left behind"
    again = subprocess.run(
        command(bag, run, 8, 2, "resume:=true"), env=environment(), capture_output=True, text=True, timeout=180
    )
    assert again.returncode == 0, again.stderr
    steps = [p["step"] for p in progress_lines(again.stderr)]
    assert steps == list(range(step + 1, 9))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopped_by_a_signal_it_writes_its_step_and_exits_cleanly(bag, tmp_path, sig):
    """Ctrl-C or a launch shutdown ends the step in progress, writes latest.pt at that step and exits 0."""
    run = tmp_path / "run"
    no_renderer = tmp_path / "train.yaml"  # steps of a few seconds: the renderer's take a minute on a CPU
    no_renderer.write_text(TRAIN_YAML.read_text().replace("renderer: true", "renderer: false"))
    args = command(bag, run, 50, 100) + ["-p", f"train_config:={no_renderer}"]
    proc = subprocess.Popen(args, env=environment(), stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "progress {" in line:
                break
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, rest
    assert "Error" not in rest and "Traceback" not in rest, rest
    last = progress_lines(rest)[-1]["step"] if progress_lines(rest) else 1
    assert "stopped at step" in rest, rest
    assert load_checkpoint(run / "latest.pt", expected=load_preset("tiny"))["step"] == last
    assert [p.name for p in run.iterdir()] == ["latest.pt"]


# One bad bag is enough here: this is the node's way out of any error (exit 1, one line naming the bag and
# topic, no files). Which errors the fine-tuning raises (a bag without /occupancy/gt in supervised mode, an
# existing run without resume) is checked in-process in test/ros/test_bag_training.py.
def test_bad_bag_names_bag_and_topic_and_leaves_nothing(bag, tmp_path):
    prefix, expected = "/CAM_FRONT_LEFT/", "/CAM_FRONT_LEFT/image_rect/compressed"
    broken = copy_without(bag, tmp_path / "broken", prefix)
    run = tmp_path / "run"
    result = subprocess.run(command(broken, run, 2, 1), env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert str(broken) in result.stderr and expected in result.stderr, result.stderr
    assert not run.exists() or not any(run.iterdir())
