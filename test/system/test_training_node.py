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
import yaml
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_domains import in_process_domain
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


@pytest.fixture(scope="module")
def robot(bag, tmp_path_factory) -> Path:
    from robot_bag import write_robot_bag

    return write_robot_bag(bag, tmp_path_factory.mktemp("robot") / "robot", "mcap")


def shared_params_file(path: Path, bag: Path, out_dir: Path, calibration: str = "") -> Path:
    """One ROS params file for both nodes: the occupancy node's topic parameters naming a robot bag's topics,
    its model and device, and the training node's own parameters beside them (each node ignores the other's)."""
    from robot_bag import robot_params

    params = {
        "model_config": "tiny",
        "device": "cpu",
        "calibration": calibration,
        **robot_params(tuple(load_preset("tiny").cameras.names)),
        "bags": [str(bag)],
        "train_config": str(REPO / "config" / "train_finetune_bags.yaml"),
        "out_dir": str(out_dir),
        "steps": 1,
        "mode": "self_supervised",
    }
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


def test_fine_tunes_on_a_robot_bag_with_the_params_file_of_the_occupancy_node(robot, tmp_path, capfd):
    """A bag as a robot records it (other topic names, raw images, /tf ego motion, no calibration file, no
    labels) and the params file the occupancy node takes: the rig comes from the bag, a step runs."""
    from tacocc_ros.training.training_node import TrainingNode

    params = shared_params_file(tmp_path / "params.yaml", robot, tmp_path / "run")
    rclpy.init(args=["--ros-args", "--params-file", str(params)], domain_id=in_process_domain("shared_params"))
    node = None
    seen: list[dict] = []
    try:
        node = TrainingNode()
        node.on_progress = lambda p: seen.append(p.as_dict())  # type: ignore[method-assign]
        assert node.run() == 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    assert f"rig of {robot} from its /tf_static and camera_info" in capfd.readouterr().err
    assert [p["step"] for p in seen] == [1] and seen[0]["terms"]["geo"] > 0 and "occ" not in seen[0]["terms"]
    assert load_checkpoint(tmp_path / "run" / "latest.pt", expected=load_preset("tiny"))["step"] == 1


def test_the_shared_params_file_configures_the_occupancy_node(robot, tmp_path):
    """`tacocc calibration --bag --params-file` writes the rig of the robot bag; the same params file, naming
    that calibration, sets the occupancy node's inputs to the robot bag's topics (raw images)."""
    from robot_bag import LIDAR, image_topic, info_topic

    from tacocc_core.cli import main as tacocc
    from tacocc_ros.node.node_params import camera_inputs
    from tacocc_ros.node.occupancy_node import OccupancyNode

    calibration = tmp_path / "calibration.yaml"
    topics_only = shared_params_file(tmp_path / "topics.yaml", robot, tmp_path / "run")
    assert (
        tacocc(["calibration", "--bag", str(robot), "--params-file", str(topics_only), "--out", str(calibration)]) == 0
    )
    params = shared_params_file(tmp_path / "params.yaml", robot, tmp_path / "run", str(calibration))
    rclpy.init(args=["--ros-args", "--params-file", str(params)], domain_id=in_process_domain("shared_params"))
    node = None
    try:
        node = OccupancyNode()
        assert node.values["lidar_topic"] == LIDAR and node.values["calibration"] == str(calibration)
        for cam in camera_inputs(node.values, node.cameras):
            assert (cam.image_topic, cam.info_topic, cam.transport) == (
                image_topic(cam.name),
                info_topic(cam.name),
                "raw",
            )
        assert node.active, node.configure_error  # every value passed the node's checks (configure ran)
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
