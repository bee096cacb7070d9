"""The training node's parameters and the `FineTuneSpec` they make.

The topic parameters are the occupancy node's (same names, defaults and checks: `SHARED`, `CAMERA_SHARED`),
so one params file serves both nodes; `PARAMS` are the training node's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tacocc_core.bags.topics import LABELS_TOPIC, SensorTopics
from tacocc_core.config import ModelConfig
from tacocc_core.train.train_config import TrainConfig, load_train_config
from tacocc_ros.node.node_params import NODE_PARAMS, camera_params, check_parameter, sync_config
from tacocc_ros.training.bag_training import FineTuneSpec, bag_paths

# The occupancy node's parameters that say how its inputs are read (same names, defaults and checks).
SHARED = ("lidar_topic", "odom_topic", "ego_frame", "slop_s", "timeout_s", "min_cameras")
CAMERA_SHARED = ("image_topic", "info_topic", "transport", "offset_s")

PARAMS: dict[str, tuple[Any, str]] = {
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
    "autostart": (
        True,
        "configure and train at startup, exit when done (a plain `ros2 run`); false leaves the node "
        "unconfigured for a lifecycle manager (`ros2 lifecycle set /training_node configure`, then `activate`)",
    ),
}
# How the bags' messages are read: the occupancy node's input parameters (set them in the params file both
# nodes take) and the labels topic.
INPUT_PARAMS: dict[str, tuple[Any, str]] = {
    "labels_topic": (LABELS_TOPIC, "sensor_msgs/PointCloud2 voxel labels (used where a bag has them, mode auto)"),
    **{name: (NODE_PARAMS[name].default, f"as occupancy_node: {NODE_PARAMS[name].description}") for name in SHARED},
}


def camera_param_defaults(camera: str) -> dict[str, tuple[Any, str]]:
    """The per-camera parameters shared with the occupancy node: {name: (default, description)}."""
    specs = camera_params(camera)
    return {
        f"cameras.{camera}.{key}": (
            specs[f"cameras.{camera}.{key}"].default,
            specs[f"cameras.{camera}.{key}"].description,
        )
        for key in CAMERA_SHARED
    }


def camera_params_of(cameras: tuple[str, ...]) -> dict:
    """The occupancy node's ParamSpecs of the shared per-camera parameters (their checks)."""
    return {
        name: spec
        for c in cameras
        for name, spec in camera_params(c).items()
        if name.rsplit(".", 1)[1] in CAMERA_SHARED
    }


def fine_tune_spec(v: dict[str, Any], config: ModelConfig) -> FineTuneSpec:
    """The run the parameter values `v` ({name: value}, every parameter the node declares) describe.

    Raises ValueError naming the parameter whose value is refused, BagError naming a bag that does not
    exist, and the train config's errors naming its file.
    """
    if not v["out_dir"]:
        raise ValueError("parameter out_dir: must name the run folder")
    cameras = tuple(config.cameras.names)
    shared_specs = {**{n: NODE_PARAMS[n] for n in SHARED}, **camera_params_of(cameras)}
    for name in shared_specs:
        if (reason := check_parameter(shared_specs, name, v[name])) is not None:
            raise ValueError(f"parameter {reason}")
    device = v["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    bags = bag_paths([b for b in v["bags"] if b])
    tc = load_train_config(v["train_config"]) if v["train_config"] else TrainConfig()
    changes = {}
    if v["steps"] > 0:
        changes["steps"] = v["steps"]
        changes["warmup_steps"] = min(tc.warmup_steps, v["steps"] - 1)
    if v["checkpoint_interval"] > 0:
        changes["ckpt_every"] = v["checkpoint_interval"]
    tc = dataclasses.replace(tc, **changes)
    return FineTuneSpec(
        bags=bags,
        config=config,
        train_config=tc,
        out_dir=v["out_dir"],
        initial_checkpoint=v["checkpoint"],
        resume=v["resume"],
        mode=v["mode"],
        label_fraction=v["label_fraction"],
        device=device,
        topics=SensorTopics.from_params(v),
        calibration=v["calibration"],
        sync=sync_config(v, cameras),
    )
