"""Drive, record, fine-tune, reload: the loop a vehicle runs, end to end over real DDS with real bag files.

`tacocc drive` publishes the real fixture frame into a running occupancy node (the vehicle), `tacocc
record` records the node's inputs into a rosbag2 bag, `training_node` fine-tunes the node's checkpoint on
that bag (self-supervised, no labels), and the running node reloads the new `latest.pt` through its
parameter service (`tacocc reload`) and keeps publishing grids for sweeps sent after the reload.

The rig: the drive publishes it on /tf_static where tf2_msgs is installed (a ROS 2 install) and the
training node derives it from the recording's /tf_static and camera_info; without tf2_msgs (the PyPI
wheels cannot publish or subscribe /tf_static) the training node is given the node's own calibration file
as its `calibration` parameter, as one params file serves both nodes. Either way the recorded bag folder
holds only the bag. Slow: over a minute on a 2-core machine (two node processes, two drives, a fine-tune).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402

from tacocc_core.bags.reading import BagReader  # noqa: E402
from tacocc_core.bags.topics import LIDAR_TOPIC, ODOM_TOPIC, TF_STATIC_TOPIC, camera_topics  # noqa: E402
from tacocc_core.checkpoint import load_checkpoint  # noqa: E402
from tacocc_core.config import load_preset  # noqa: E402
from tacocc_ros.messages.stamps import stamp_to_ns  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import (  # noqa: E402
    DEFAULT_OUTPUT_TOPIC,
    DriveOptions,
    LoadDriver,
    driver_node_params,
)
from tacocc_ros.tooling.node_process import OccupancyNodeProcess, RosHandle, child_environment  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

HAS_TF2_MSGS = importlib.util.find_spec("tf2_msgs") is not None


def environment(repo_root: Path) -> dict[str, str]:
    return {**child_environment(), "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}


def tacocc(repo_root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tacocc_ros.cli", *args]


def drive(repo_root: Path, frame_dir: Path, out: Path, seconds: float) -> subprocess.CompletedProcess:
    command = tacocc(
        repo_root, "drive", "--no-start", "--frame", str(frame_dir), "--duration", str(seconds), "--warmup", "0",
        "--raw-camera", "none", "--no-bench", "--no-mcap", "--out", str(out),
    )  # fmt: skip
    return subprocess.run(command, env=environment(repo_root), capture_output=True, text=True, timeout=180)


class Grids:
    """The node's occupancy clouds as they arrive: (header stamp ns) of each."""

    def __init__(self) -> None:
        self.ros = RosHandle("loop_listener")
        self.stamps: list[int] = []
        self._lock = threading.Lock()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.ros.node.create_subscription(PointCloud2, DEFAULT_OUTPUT_TOPIC, self._on_cloud, qos)

    def _on_cloud(self, msg: PointCloud2) -> None:
        with self._lock:
            self.stamps.append(stamp_to_ns(msg.header.stamp))

    def after(self, stamp_ns: int) -> list[int]:
        with self._lock:
            return [s for s in self.stamps if s > stamp_ns]


def test_drive_record_finetune_and_reload_into_the_running_node(repo_root, nuscenes_frame_dir, tmp_path):
    frame = frame_from_fixture(nuscenes_frame_dir)
    calibration = frame.write_calibration(tmp_path / "calibration.yaml")  # the vehicle's node's calibration file
    checkpoint = repo_root / "checkpoints" / "demo.pt"
    params = driver_node_params(calibration, str(checkpoint), DriveOptions(raw_camera=None))
    bag, run = tmp_path / "bag", tmp_path / "run"
    env = environment(repo_root)
    with OccupancyNodeProcess(params, tmp_path / "node.log") as node:
        grids = Grids()
        try:
            # The vehicle drives while `tacocc record` records the node's inputs (topic names: the node's defaults).
            recorder = subprocess.Popen(
                tacocc(repo_root, "record", "-o", str(bag), "--config", "demo"),
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                driven = drive(repo_root, nuscenes_frame_dir, tmp_path / "drive.json", 3.0)
                assert driven.returncode == 0, driven.stderr
                recorder.send_signal(signal.SIGINT)
                out, err = recorder.communicate(timeout=60)
            finally:
                if recorder.poll() is None:
                    recorder.kill()
            assert recorder.returncode == 0, err
            assert "dropped in total: 0" in out, out
            cameras = load_preset("demo").cameras.names
            with BagReader(bag) as reader:
                counts = {topic: info.count for topic, info in reader.topics.items()}
            for topic in (LIDAR_TOPIC, ODOM_TOPIC, *(t for c in cameras for t in camera_topics(c))):
                assert counts.get(topic, 0) > 0, (topic, counts)
            assert (TF_STATIC_TOPIC in counts) == HAS_TF2_MSGS, counts
            assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
            assert sorted(p.name for p in bag.iterdir()) == ["bag.mcap", "metadata.yaml"]  # no calibration file

            # Fine-tune the node's checkpoint on the recording: a few self-supervised steps, no labels.
            train_config = yaml.safe_load((repo_root / "config" / "train_finetune_bags.yaml").read_text())
            train_config.update(steps=2, warmup_steps=1, ckpt_every=2, log_every=1)
            (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(train_config))
            train_params = {
                "bags": f"['{bag}']", "model_config": "demo", "checkpoint": str(checkpoint),
                "train_config": str(tmp_path / "finetune.yaml"), "out_dir": str(run), "steps": "2",
                "mode": "self_supervised",
            }  # fmt: skip
            if not HAS_TF2_MSGS:  # no /tf_static in the recording: the node's calibration file gives the rig
                train_params["calibration"] = str(calibration)
            command = [sys.executable, "-m", "tacocc_ros.training.training_node", "--ros-args"]
            for name, value in train_params.items():
                command += ["-p", f"{name}:={value}"]
            trained = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            assert trained.returncode == 0, trained.stderr[-4000:]
            rig_from = f"from its {TF_STATIC_TOPIC} and camera_info" if HAS_TF2_MSGS else f"from {calibration}"
            assert f"rig of {bag} {rig_from}" in trained.stderr, trained.stderr[-4000:]
            latest = run / "latest.pt"
            assert load_checkpoint(latest, expected=load_preset("demo"))["step"] >= 2

            # The running node takes the new weights (`tacocc reload`, the `ros2 param set` of the guide) and
            # keeps publishing.
            reloaded_at = time.time_ns()
            reloaded = subprocess.run(
                tacocc(repo_root, "reload", "--checkpoint", str(latest)), env=env, capture_output=True, text=True,
                timeout=120,
            )  # fmt: skip
            assert reloaded.returncode == 0, reloaded.stderr
            after = DriveOptions(duration_s=2.0, warmup_s=0.0, raw_camera=None, settle_s=1.0)
            assert LoadDriver(frame, after).run()["published"]["lidar"] > 0  # `tacocc drive --no-start`'s driver
            deadline = time.monotonic() + 30
            while not grids.after(reloaded_at) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert grids.after(reloaded_at), "no grid for a sweep sent after the reload"
            node.check_alive("after the reload")
            assert f"reloaded checkpoint {latest}" in node.log_tail(200_000)
        finally:
            grids.ros.close()
    assert node.returncode == 0, node.log_tail()
    assert os.path.isdir(bag)
