"""Parameters of the occupancy node: declaration with descriptions, validation, a typed snapshot.

`config/occupancy_node.yaml` spells out every parameter. Per-camera parameters are declared for the
camera names of the model config (`cameras.<NAME>.image_topic`, ...), so the model config is read first.
Parameters marked read-only need a restart (they shape subscriptions or the network); the others can be
changed while the node runs and are checked by `check_parameter` in the on-set callback, which returns
the reason a value is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tacocc_core.bags.topics import camera_topics
from tacocc_ros.node.sync import SyncConfig

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class ParamSpec:
    default: Any
    description: str
    read_only: bool = False
    check: Callable[[Any], str | None] | None = None


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}, got {v!r}"


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}, got {v}"


def _positive(v: Any) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def _device(v: Any) -> str | None:
    ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
    return None if ok else f"must be auto, cpu, cuda or cuda:N, got {v!r}"


def _file_or_empty(v: Any) -> str | None:
    return None if v == "" or Path(v).is_file() else f"file {v!r} not found"


def _port(v: Any) -> str | None:
    return None if 0 <= v <= 65535 else f"must be a TCP port 1..65535 or 0 (off), got {v}"


def _dir_or_empty(v: Any) -> str | None:
    return None if v == "" or Path(v).is_dir() else f"folder {v!r} not found"


def _topic(v: Any) -> str | None:
    return None if v and " " not in v else f"must be a topic name, got {v!r}"


# Parameters that do not depend on the camera names.
NODE_PARAMS: dict[str, ParamSpec] = {
    "autostart": ParamSpec(
        True,
        "configure and activate at startup (a plain `ros2 run`); false leaves the node unconfigured for a "
        "lifecycle manager (`ros2 lifecycle set /occupancy_node configure`, then `activate`)",
        True,
    ),  # fmt: skip
    "model_config": ParamSpec("nuscenes_r50_256x704", "model preset name or config YAML path", True),
    "checkpoint": ParamSpec(
        "", "checkpoint file; empty = random weights (demos and tests only); a change reloads it", False, _file_or_empty
    ),
    "device": ParamSpec("auto", "auto, cpu, cuda or cuda:N", True, _device),
    "precision": ParamSpec("fp32", "fp32, bf16 or fp16 (autocast)", True, _one_of("fp32", "bf16", "fp16")),
    "backend": ParamSpec(
        "torch",
        "torch (eager PyTorch) or onnxruntime (image branch, view transform, ConvLSTM and head as ONNX parts)",
        True,
        _one_of("torch", "onnxruntime"),
    ),  # fmt: skip
    "onnx_dir": ParamSpec(
        "",
        "with backend onnxruntime: a folder written by `tacocc export` with `--onnx`; empty = export at startup",
        True,
        _dir_or_empty,
    ),  # fmt: skip
    "lidar_topic": ParamSpec("/LIDAR_TOP", "sensor_msgs/PointCloud2 input", True, _topic),
    "odom_topic": ParamSpec("/odom", "nav_msgs/Odometry input (ego pose for the temporal warp)", True, _topic),
    "lidar_intensity_scale": ParamSpec(
        1.0,
        "incoming LiDAR intensities are multiplied by this into the checkpoint's scale (0-255, as nuScenes; "
        "e.g. 255 for a driver sending 0-1, 0.25 for one sending 0-1020)",
        False,
        _positive,
    ),  # fmt: skip
    "sensor_reliability": ParamSpec(
        "auto",
        "QoS reliability of the sensor inputs (images, LiDAR, odometry, TF): auto (adapts to the publishers, as "
        "rosbag2 does: reliable when all of them are, best effort otherwise), reliable or best_effort",
        True,
        _one_of("auto", "best_effort", "reliable"),
    ),  # fmt: skip
    "camera_info_durability": ParamSpec(
        "auto",
        "QoS of CameraInfo (and /tf_static): auto (adapts: reliable transient local when every publisher is "
        "latched, hearing default and sensor-data publishers too), transient_local or volatile",
        True,
        _one_of("auto", "transient_local", "volatile"),
    ),  # fmt: skip
    "slop_s": ParamSpec(0.05, "largest |image stamp - (LiDAR stamp + offset)| matched, seconds", False, _at_least(0.0)),
    "timeout_s": ParamSpec(0.2, "how long (message time) a sweep waits for its images, seconds", False, _at_least(0.0)),
    "min_cameras": ParamSpec(
        6,
        "a sweep that times out with at least this many cameras is processed degraded; more than "
        "the camera count means all are required",
        False,
        _at_least(0),
    ),  # fmt: skip
    "use_message_filters": ParamSpec(
        False,
        "message_filters' ApproximateTimeSynchronizer (a ROS 2 install) instead of the project's; "
        "where message_filters is not importable, true stops the node at startup",
        True,
    ),  # fmt: skip
    "max_cubes": ParamSpec(100000, "cap on marker cubes (nearest kept); 0 = no cap", False, _at_least(0)),
    "calibration": ParamSpec(
        "",
        "calibration YAML (`tacocc calibration` writes and checks one; schema in tacocc_core/rig/calibration_file.py); "
        "empty = TF only",
        True,
        _file_or_empty,
    ),  # fmt: skip
    "extrinsics": ParamSpec("auto", "auto, tf or calibration", True, _one_of("auto", "tf", "calibration")),
    "ego_frame": ParamSpec("base_link", "odometry child frame (TF lookups of the LiDAR mount)", True),
    "odom_tolerance_s": ParamSpec(
        0.1, "a LiDAR stamp this far outside the odometry is still matched", False, _at_least(0.0)
    ),  # fmt: skip
    "odom_wait_s": ParamSpec(
        0.05, "the worker waits this long (wall time) for odometry at the LiDAR stamp", False, _at_least(0.0)
    ),  # fmt: skip
    "diagnostics_period_s": ParamSpec(1.0, "period of /diagnostics, seconds", True, _positive),
    "decode_threads": ParamSpec(2, "threads decoding the camera images", True, _at_least(1)),
    "inference_threads": ParamSpec(
        0, "torch intra-op threads of the network; 0 = every core this process may use", True, _at_least(0)
    ),  # fmt: skip
    "lidar_queue_depth": ParamSpec(
        5,
        "PointCloud2 messages the LiDAR subscription keeps (each sweep is merged into the next frames, so a "
        "short stall of the callbacks should not lose any)",
        True,
        _at_least(1),
    ),  # fmt: skip
    "image_queue_depth": ParamSpec(5, "messages each camera image subscription keeps", True, _at_least(1)),
    "max_points": ParamSpec(
        500000, "a PointCloud2 with more points is refused before decoding (counted, logged)", False, _at_least(1)
    ),  # fmt: skip
    "log_throttle_s": ParamSpec(
        5.0, "one log line per reason per this period, with the count of the others", True, _positive
    ),  # fmt: skip
    "foxglove_port": ParamSpec(
        0,
        "serve the grid, the LiDAR sweep, the cameras and TF to the Foxglove app on this WebSocket port; 0 = off",
        True,
        _port,
    ),  # fmt: skip
    "foxglove_host": ParamSpec(
        "127.0.0.1", "address the Foxglove server binds: 127.0.0.1 (this machine) or 0.0.0.0 (all)", True
    ),  # fmt: skip
}


def camera_params(camera: str) -> dict[str, ParamSpec]:
    """The per-camera parameters, defaults following the common nuScenes converters' topic names."""
    prefix = f"cameras.{camera}."
    return {
        prefix + "image_topic": ParamSpec(
            camera_topics(camera)[0],
            "image input (image_transport names: `<base>/compressed` for a CompressedImage); with no publisher "
            "there, the older `<base>_compressed` name is used where it has one",
            True,
            _topic,
        ),  # fmt: skip
        prefix + "info_topic": ParamSpec(camera_topics(camera)[1], "CameraInfo (latched or not)", True, _topic),
        prefix + "transport": ParamSpec(
            "compressed", "compressed (CompressedImage) or raw (Image)", True, _one_of("compressed", "raw")
        ),  # fmt: skip
        prefix + "offset_s": ParamSpec(0.0, "expected image stamp minus LiDAR stamp, seconds", False),
    }


def all_params(cameras: tuple[str, ...]) -> dict[str, ParamSpec]:
    specs = dict(NODE_PARAMS)
    for camera in cameras:
        specs.update(camera_params(camera))
    return specs


def check_parameter(specs: dict[str, ParamSpec], name: str, value: Any) -> str | None:
    """Why `value` is refused for parameter `name`, or None when it is fine."""
    spec = specs.get(name)
    if spec is None:
        return None  # not ours (use_sim_time and the like)
    expected = type(spec.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        return f"{name}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
    if spec.check is not None and (reason := spec.check(value)) is not None:
        return f"{name}: {reason}"
    return None


@dataclass(frozen=True)
class CameraInput:
    name: str
    image_topic: str
    info_topic: str
    transport: str
    offset_ns: int


def camera_inputs(values: dict[str, Any], cameras: tuple[str, ...]) -> list[CameraInput]:
    """Per-camera inputs from a {parameter name: value} dict."""
    out = []
    for camera in cameras:
        p = f"cameras.{camera}."
        out.append(
            CameraInput(
                camera,
                values[p + "image_topic"],
                values[p + "info_topic"],
                values[p + "transport"],
                round(values[p + "offset_s"] * NS_PER_S),
            )
        )
    return out


def param_values(cameras: tuple[str, ...], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's value: the defaults for `cameras`, then `overrides` (a params file's entries)."""
    values = {name: spec.default for name, spec in all_params(cameras).items()}
    values.update(overrides or {})
    return values


def sync_config(values: dict[str, Any], cameras: tuple[str, ...]) -> SyncConfig:
    """The node's image-to-sweep matching rule from its parameter values (see `param_values`)."""
    min_cameras = values["min_cameras"]
    return SyncConfig(
        cameras=cameras,
        slop_ns=round(values["slop_s"] * NS_PER_S),
        timeout_ns=round(values["timeout_s"] * NS_PER_S),
        offsets_ns={c.name: c.offset_ns for c in camera_inputs(values, cameras) if c.offset_ns},
        min_cameras=None if min_cameras >= len(cameras) else min_cameras,
    )
