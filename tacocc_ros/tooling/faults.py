"""Bad sensor messages a load driver injects, each built from a good one, and where the node counts each.

Every fault replaces one good message of its stream (or changes the stream for a while); the good
messages go on right after it. `FAULTS` lists them in the order a driver cycles through them:

    fault              stream   what is wrong                                     node's /diagnostics key
    truncated_cloud    LiDAR    data holds half the bytes the header promises     failed bad PointCloud2
    short_point_step   LiDAR    point_step 8 < the 20 bytes of its fields         failed bad PointCloud2
    missing_x          LiDAR    no field `x`                                      failed bad PointCloud2
    nonfinite_points   LiDAR    a tenth of the points NaN, a twentieth inf        non-finite points dropped
    empty_cloud        LiDAR    width 0                                           failed empty PointCloud2
    huge_cloud         LiDAR    2,000,000 points, x/y/z float32 (24 MB)           failed oversized PointCloud2
    corrupt_jpeg       camera   JPEG start marker, then garbage                   failed image <camera>
    unknown_format     camera   format "h264", an H.264 NAL unit as data          failed image <camera>
    wrong_step         camera   raw rgb8 Image whose step is shorter than a row   failed image <raw camera>
    zero_k             info     CameraInfo with K all zero                        failed bad CameraInfo <camera>
    nan_quaternion     odom     orientation (NaN, 0, 0, 1)                        failed bad Odometry
    time_jump          clock    every stamp from now on `time_jump_s` earlier     time went backwards
    silent_camera      camera   one camera publishes nothing for `silence_s`      degraded <camera> or
                                                                                  dropped timeout:<camera>

Plain message construction (no DDS), so each fault is tested against the node's own decoders.

Delivery: the node's sensor subscriptions keep the last few messages (sensor-data QoS, depth 5). A
24 MB cloud takes long enough to cross DDS that, on a loaded machine, newer sweeps can push it out of
the node's queue before the node takes it; then it is never seen (nor counted), and the larger the cloud,
the likelier. A driver that must see it counted injects it more than once.
"""

from __future__ import annotations

import array
import copy
from dataclasses import dataclass

import numpy as np
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from tacocc_ros.messages.pointcloud import array_to_cloud

FAULTS = (
    "truncated_cloud",
    "short_point_step",
    "missing_x",
    "nonfinite_points",
    "empty_cloud",
    "huge_cloud",
    "corrupt_jpeg",
    "unknown_format",
    "wrong_step",
    "zero_k",
    "nan_quaternion",
    "time_jump",
    "silent_camera",
)
HUGE_CLOUD_POINTS = 2_000_000


@dataclass(frozen=True)
class FaultCameras:
    """Which camera each camera fault hits (different ones, so that each has a /diagnostics key of its own)."""

    corrupt_jpeg: str = "CAM_FRONT"
    unknown_format: str = "CAM_FRONT_LEFT"
    wrong_step: str = "CAM_BACK_RIGHT"  # must be the camera published as a raw Image
    zero_k: str = "CAM_FRONT_RIGHT"
    silent_camera: str = "CAM_BACK"


def diagnostics_keys(fault: str, cameras: FaultCameras) -> tuple[str, ...]:
    """The /diagnostics keys that count `fault` (any one of them counts it)."""
    keys = {
        "truncated_cloud": ("failed bad PointCloud2",),
        "short_point_step": ("failed bad PointCloud2",),
        "missing_x": ("failed bad PointCloud2",),
        "nonfinite_points": ("non-finite points dropped",),
        "empty_cloud": ("failed empty PointCloud2",),
        "huge_cloud": ("failed oversized PointCloud2",),
        "corrupt_jpeg": (f"failed image {cameras.corrupt_jpeg}",),
        "unknown_format": (f"failed image {cameras.unknown_format}",),
        "wrong_step": (f"failed image {cameras.wrong_step}",),
        "zero_k": (f"failed bad CameraInfo {cameras.zero_k}",),
        "nan_quaternion": ("failed bad Odometry",),
        "time_jump": ("time went backwards",),
        "silent_camera": (f"degraded {cameras.silent_camera}", f"dropped timeout:{cameras.silent_camera}"),
    }
    if fault not in keys:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    return keys[fault]


def check_faults(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`names` validated ("all" means every fault); ValueError naming the unknown ones."""
    if list(names) == ["all"]:
        return FAULTS
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault {', '.join(unknown)}; known: all, {', '.join(FAULTS)}")
    return tuple(names)


def _cloud_like(good: PointCloud2, **changes) -> PointCloud2:
    fields = dict(
        header=good.header, height=good.height, width=good.width, fields=list(good.fields),
        is_bigendian=good.is_bigendian, point_step=good.point_step, row_step=good.row_step, data=good.data,
        is_dense=good.is_dense,
    )  # fmt: skip
    fields.update(changes)
    return PointCloud2(**fields)


def bad_cloud(fault: str, good: PointCloud2, points: np.ndarray, rng: np.random.Generator) -> PointCloud2:
    """The LiDAR fault `fault` built from `good` and its (N,) structured `points` (x, y, z, intensity, ...)."""
    if fault == "truncated_cloud":
        return _cloud_like(good, data=bytes(good.data[: len(good.data) // 2]))
    if fault == "short_point_step":
        return _cloud_like(good, point_step=8, row_step=8 * good.width)
    if fault == "missing_x":
        return _cloud_like(good, fields=[f for f in good.fields if f.name != "x"])
    if fault == "nonfinite_points":
        broken = points.copy()
        n = len(broken)
        broken["x"][rng.choice(n, n // 10, replace=False)] = np.nan
        broken["y"][rng.choice(n, n // 20, replace=False)] = np.inf
        return array_to_cloud(broken, good.header, is_dense=False)
    if fault == "empty_cloud":
        return _cloud_like(good, width=0, row_step=0, data=array.array("B"))
    if fault == "huge_cloud":  # x, y, z only: 24 MB, what DDS still carries to a busy node most of the time
        huge = np.zeros(HUGE_CLOUD_POINTS, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
        for name in ("x", "y", "z"):
            huge[name] = rng.uniform(-50, 50, HUGE_CLOUD_POINTS).astype(np.float32)
        return array_to_cloud(huge, good.header, is_dense=True)
    raise ValueError(f"{fault!r} is not a LiDAR fault")


def bad_compressed(fault: str, good: CompressedImage, rng: np.random.Generator) -> CompressedImage:
    """`corrupt_jpeg` or `unknown_format` in place of the JPEG `good`."""
    if fault == "corrupt_jpeg":
        garbage = rng.integers(0, 256, len(good.data) // 4, dtype=np.uint8).tobytes()
        return CompressedImage(header=good.header, format=good.format, data=b"\xff\xd8\xff\xe0" + garbage)
    if fault == "unknown_format":
        nal = b"\x00\x00\x00\x01\x67" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        return CompressedImage(header=good.header, format="h264", data=nal)
    raise ValueError(f"{fault!r} is not a compressed-image fault")


def wrong_step_image(good: Image) -> Image:
    """`good` (rgb8) with a step one pixel shorter than a row."""
    return Image(
        header=good.header, height=good.height, width=good.width, encoding=good.encoding,
        is_bigendian=good.is_bigendian, step=good.width * 3 - 3, data=good.data,
    )  # fmt: skip


def zero_k_info(good: CameraInfo) -> CameraInfo:
    bad = copy.copy(good)
    bad.k = [0.0] * 9
    return bad


def nan_quaternion_odom(good: Odometry) -> Odometry:
    bad = copy.deepcopy(good)
    q = bad.pose.pose.orientation
    q.x, q.y, q.z, q.w = float("nan"), 0.0, 0.0, 1.0
    return bad
