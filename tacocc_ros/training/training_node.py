"""`training_node`: fine-tunes a checkpoint on recorded bags and reports its progress over ROS 2.

    ros2 run tacocc_ros training_node --ros-args -p bags:="['/data/bags/scene-0061']" \
        -p model_config:=tiny -p train_config:=config/train_tiny.yaml -p out_dir:=runs/online

Reads the bags directly (no playback), assembles frames as the occupancy node does (`bag_frames`) and
trains with the training engine (`bag_training.FineTuner`). The topic parameters are the occupancy
node's (`lidar_topic`, `odom_topic`, `ego_frame`, `cameras.<NAME>.image_topic` / `info_topic`, the
matching parameters `slop_s`, `timeout_s`, `min_cameras`, `cameras.<NAME>.offset_s`) plus
`labels_topic`, so one params file (`--ros-args --params-file`) serves both nodes; parameters of the
other node in it are ignored here. The rig of each bag comes from `calibration`, else the bag's
`calibration.yaml`, else its /tf_static and camera_info; the log says which. Every `checkpoint_interval` steps it writes
`<out_dir>/latest.pt` atomically; point the occupancy node's `checkpoint` parameter at it (or call its
`~/reload_checkpoint` service) to use the new weights without a restart. Each step publishes
`{"step", "total_steps", "loss", "terms", "frames_per_s", "checkpoint"}` as JSON in a std_msgs/String on
`~/progress` and logs it. Bad input (a missing bag or topic, no labels in supervised mode, a mismatching
checkpoint) is logged naming the bag/topic/file and the process exits with status 1; nothing partial
is written (checkpoints are written to a temp name, then renamed).

SIGINT (Ctrl-C) or SIGTERM (a launch shutdown) ends the step in progress, writes `latest.pt` at that step,
publishes that step's progress and exits with status 0; `resume:=true` continues from there. A second
signal stops at once (the last periodic checkpoint stands). rclpy's own handlers are left out: they shut
the context down at the signal, so that the step's progress could no longer be published or logged.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading

import rclpy
import torch
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

from tacocc_core.allocator import keep_freed_memory
from tacocc_core.bags.topics import LABELS_TOPIC, SensorTopics
from tacocc_core.config import load_preset
from tacocc_core.train.train_config import TrainConfig, load_train_config
from tacocc_ros.node.node_params import NODE_PARAMS, camera_params, check_parameter, sync_config
from tacocc_ros.training.bag_training import FineTuner, FineTuneSpec, Progress, bag_paths

# The occupancy node's parameters that say how its inputs are read (same names, defaults and checks).
SHARED = ("lidar_topic", "odom_topic", "ego_frame", "slop_s", "timeout_s", "min_cameras")
CAMERA_SHARED = ("image_topic", "info_topic", "transport", "offset_s")

PARAMS = {
    "bags": ([""], "rosbag2 bags (folders, .mcap or .db3 files)"),
    "model_config": ("tiny", "model preset name or YAML path"),
    "checkpoint": ("", "initial weights ('' = random); ignored when resuming"),
    "train_config": ("", "TrainConfig YAML ('' = the defaults)"),
    "out_dir": ("", "run folder; latest.pt is written here"),
    "checkpoint_interval": (0, "steps between checkpoints (0 = the train config's ckpt_every)"),
    "steps": (0, "optimiser steps in total (0 = the train config's steps)"),
    "device": ("cpu", "auto (cuda when available), cpu, cuda or cuda:N"),
    "label_fraction": (1.0, "fraction of the labels kept (label_efficient.label_mode decides frames or voxels)"),
    "mode": ("auto", "auto, supervised or self_supervised"),
    "resume": (False, "continue from out_dir/latest.pt when it exists"),
    "calibration": (
        "",
        "calibration YAML for every bag ('' = each bag's calibration.yaml, else the rig from its /tf_static "
        "and camera_info)",
    ),
}
# How the bags' messages are read: the occupancy node's input parameters (set them in the params file both
# nodes take) and the labels topic.
INPUT_PARAMS = {
    "labels_topic": (LABELS_TOPIC, "sensor_msgs/PointCloud2 voxel labels (used where a bag has them, mode auto)"),
    **{name: (NODE_PARAMS[name].default, f"as occupancy_node: {NODE_PARAMS[name].description}") for name in SHARED},
}


def camera_param_defaults(camera: str) -> dict[str, tuple]:
    """The per-camera parameters shared with the occupancy node: {name: (default, description)}."""
    specs = camera_params(camera)
    return {
        f"cameras.{camera}.{key}": (
            specs[f"cameras.{camera}.{key}"].default,
            specs[f"cameras.{camera}.{key}"].description,
        )
        for key in CAMERA_SHARED
    }


class TrainingNode(Node):
    def __init__(self, stop: threading.Event | None = None, **kwargs) -> None:
        super().__init__("training_node", **kwargs)
        self.stop = stop or threading.Event()
        for name, (default, description) in {**PARAMS, **INPUT_PARAMS}.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        config = load_preset(self.get_parameter("model_config").value)
        cameras = tuple(config.cameras.names)
        per_camera = {k: v for c in cameras for k, v in camera_param_defaults(c).items()}
        for name, (default, description) in per_camera.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        v = {name: self.get_parameter(name).value for name in [*PARAMS, *INPUT_PARAMS, *per_camera]}
        if not v["out_dir"]:
            raise ValueError("parameter out_dir: must name the run folder")
        shared_specs = {**{n: NODE_PARAMS[n] for n in SHARED}, **camera_params_of(cameras)}
        for name in shared_specs:
            if (reason := check_parameter(shared_specs, name, v[name])) is not None:
                raise ValueError(f"parameter {reason}")
        if v["device"] == "auto":
            v["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        bags = bag_paths([b for b in v["bags"] if b])
        tc = load_train_config(v["train_config"]) if v["train_config"] else TrainConfig()
        changes = {}
        if v["steps"] > 0:
            changes["steps"] = v["steps"]
            changes["warmup_steps"] = min(tc.warmup_steps, v["steps"] - 1)
        if v["checkpoint_interval"] > 0:
            changes["ckpt_every"] = v["checkpoint_interval"]
        tc = dataclasses.replace(tc, **changes)
        spec = FineTuneSpec(
            bags=bags,
            config=config,
            train_config=tc,
            out_dir=v["out_dir"],
            initial_checkpoint=v["checkpoint"],
            resume=v["resume"],
            mode=v["mode"],
            label_fraction=v["label_fraction"],
            device=v["device"],
            topics=SensorTopics.from_params(v),
            calibration=v["calibration"],
            sync=sync_config(v, cameras),
        )
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_progress = self.create_publisher(String, "~/progress", qos)
        self.tuner = FineTuner(spec, log=self.get_logger().info)
        self.get_logger().info(
            f"fine-tuning {spec.config.name} on {len(bags)} bag(s), {len(self.tuner.sequences)} sequences, "
            f"from step {self.tuner.step} to {tc.steps}, checkpoints every {tc.ckpt_every} steps in {spec.out_dir}"
        )

    def on_progress(self, progress: Progress) -> None:
        text = json.dumps(progress.as_dict())
        self.pub_progress.publish(String(data=text))
        self.get_logger().info(f"progress {text}")

    def run(self) -> int:
        step = self.tuner.run(self.on_progress, should_stop=lambda: self.stop.is_set() or not self.context.ok())
        if step < self.tuner.train_config.steps and step > 0:
            path = self.tuner.save()
            self.get_logger().info(f"stopped at step {step}: wrote {path}; resume:=true continues from it")
        return step


def camera_params_of(cameras: tuple[str, ...]) -> dict:
    """The occupancy node's ParamSpecs of the shared per-camera parameters (their checks)."""
    return {
        name: spec
        for c in cameras
        for name, spec in camera_params(c).items()
        if name.rsplit(".", 1)[1] in CAMERA_SHARED
    }


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT / SIGTERM set `stop` (the step in progress ends and is saved); a second one interrupts at once."""

    def handler(signum: int, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(args: list[str] | None = None) -> int:
    malloc = keep_freed_memory()  # before the first step's tensors: see tacocc_core.allocator
    stop = threading.Event()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    _stop_on_signals(stop)
    rclpy.logging.get_logger("training_node").info(malloc or "glibc malloc settings left as they are")
    node = None
    try:
        node = TrainingNode(stop)
        step = node.run()
        node.get_logger().info(f"done at step {step}")
    except KeyboardInterrupt:
        pass
    except Exception as err:  # noqa: BLE001 - bad input ends the process with its message, not a trace
        print(f"training_node: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
