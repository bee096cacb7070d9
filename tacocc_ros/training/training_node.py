"""`training_node`: fine-tunes a checkpoint on recorded bags and reports its progress over ROS 2.

    ros2 run tacocc_ros training_node --ros-args -p bags:="['/data/bags/scene-0061']" \
        -p model_config:=tiny -p train_config:=config/train_tiny.yaml -p out_dir:=runs/online

Reads the bags directly (no playback), assembles frames as the occupancy node does (`bag_frames`) and
trains with the training engine (`bag_training.FineTuner`). Every `checkpoint_interval` steps it writes
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
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

from tacocc_core.allocator import keep_freed_memory
from tacocc_core.config import load_preset
from tacocc_core.train.train_config import TrainConfig, load_train_config
from tacocc_ros.training.bag_training import FineTuner, FineTuneSpec, Progress, bag_paths

PARAMS = {
    "bags": ([""], "rosbag2 folders (converted, with calibration.yaml)"),
    "model_config": ("tiny", "model preset name or YAML path"),
    "checkpoint": ("", "initial weights ('' = random); ignored when resuming"),
    "train_config": ("", "TrainConfig YAML ('' = the defaults)"),
    "out_dir": ("", "run folder; latest.pt is written here"),
    "checkpoint_interval": (0, "steps between checkpoints (0 = the train config's ckpt_every)"),
    "steps": (0, "optimiser steps in total (0 = the train config's steps)"),
    "device": ("cpu", "cpu, cuda or cuda:N"),
    "label_fraction": (1.0, "fraction of the labels kept (label_efficient.label_mode decides frames or voxels)"),
    "mode": ("auto", "auto, supervised or self_supervised"),
    "resume": (False, "continue from out_dir/latest.pt when it exists"),
}


class TrainingNode(Node):
    def __init__(self, stop: threading.Event | None = None, **kwargs) -> None:
        super().__init__("training_node", **kwargs)
        self.stop = stop or threading.Event()
        for name, (default, description) in PARAMS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        v = {name: self.get_parameter(name).value for name in PARAMS}
        if not v["out_dir"]:
            raise ValueError("parameter out_dir: must name the run folder")
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
            config=load_preset(v["model_config"]),
            train_config=tc,
            out_dir=v["out_dir"],
            initial_checkpoint=v["checkpoint"],
            resume=v["resume"],
            mode=v["mode"],
            label_fraction=v["label_fraction"],
            device=v["device"],
        )
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_progress = self.create_publisher(String, "~/progress", qos)
        self.tuner = FineTuner(spec)
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
