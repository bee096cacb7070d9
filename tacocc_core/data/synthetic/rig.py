"""The sensor rig of the synthetic scenes (six cameras + LIDAR_TOP): built in, or read from a calibration file.

The built-in rig (`surround_rig`) is this project's own layout in the shape of the nuScenes car: six
cameras on the roof looking front, front-left/right (+-55 deg), back-left/right (+-110 deg) and back, a
LiDAR on the roof whose y axis points forward, cameras that fire while the LiDAR beam (20 Hz, clockwise)
crosses their optical axis. A file in the layout of a nuScenes calibration dump (4x4 `a2b` matrices, 3x3
intrinsics of 1600x900 images, per-sensor timestamps in seconds; e.g. `fixtures/nuscenes_frame/calib.json`)
gives a measured rig instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUSCENES_IMAGE_SIZE = (900, 1600)  # (height, width) of the images the calibration file describes


@dataclass(frozen=True)
class Rig:
    """A camera + LiDAR rig.

    Args:
    cameras: channel names in file order.
    cam2ego: channel -> (4, 4) camera -> ego.
    cam2img: channel -> (3, 3) intrinsics at NUSCENES_IMAGE_SIZE.
    lidar2ego: (4, 4).
    camera_offset_us: channel -> camera stamp minus LiDAR stamp, microseconds.
    """

    cameras: tuple[str, ...]
    cam2ego: dict[str, np.ndarray]
    cam2img: dict[str, np.ndarray]
    lidar2ego: np.ndarray
    camera_offset_us: dict[str, int]

    def intrinsics(self, channel: str, size: tuple[int, int]) -> np.ndarray:
        """(3, 3) intrinsics of `channel` for images of (height, width) `size` (same field of view)."""
        h, w = size
        k = self.cam2img[channel].copy()
        k[0] *= w / NUSCENES_IMAGE_SIZE[1]
        k[1] *= h / NUSCENES_IMAGE_SIZE[0]
        return k


def _matrix(data: dict, key: str, shape: tuple[int, int], where: str) -> np.ndarray:
    if key not in data:
        raise ValueError(f"{where}: missing key {key!r}")
    m = np.asarray(data[key], dtype=np.float64)
    if m.shape != shape or not np.all(np.isfinite(m)):
        raise ValueError(f"{where}.{key}: expected a finite {shape} matrix, got shape {m.shape}")
    return m


# The built-in rig: (channel, yaw in degrees (ego x forward, y left), position in the ego frame (m),
# horizontal field of view in degrees). The channel order is the nuScenes one.
SURROUND_CAMERAS = (
    ("CAM_FRONT", 0.0, (1.70, 0.00, 1.50), 65.0),
    ("CAM_FRONT_RIGHT", -55.0, (1.50, -0.50, 1.50), 65.0),
    ("CAM_BACK_RIGHT", -110.0, (1.00, -0.50, 1.60), 65.0),
    ("CAM_BACK", 180.0, (0.00, 0.00, 1.60), 90.0),
    ("CAM_BACK_LEFT", 110.0, (1.00, 0.50, 1.60), 65.0),
    ("CAM_FRONT_LEFT", 55.0, (1.50, 0.50, 1.50), 65.0),
)
SURROUND_LIDAR_POSITION = (0.95, 0.0, 1.85)
LIDAR_PERIOD_US = 50_000  # one revolution at 20 Hz
LIDAR_STAMP_YAW = 106.0  # where the beam points (ego yaw, degrees) at the sweep's stamp


def _yaw_rotation(yaw_deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def surround_rig() -> Rig:
    """The built-in rig (see the module docstring); intrinsics at NUSCENES_IMAGE_SIZE."""
    h, w = NUSCENES_IMAGE_SIZE
    # camera axes (x right, y down, z forward) in the ego frame of a camera looking along +x
    optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    cam2ego, cam2img, offsets = {}, {}, {}
    for name, yaw, position, hfov in SURROUND_CAMERAS:
        pose = np.eye(4)
        pose[:3, :3] = _yaw_rotation(yaw) @ optical
        pose[:3, 3] = position
        cam2ego[name] = pose
        f = (w / 2) / np.tan(np.radians(hfov) / 2)
        cam2img[name] = np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
        # the beam turns clockwise (yaw decreasing): it crossed this camera's axis this long before the stamp
        behind_deg = (yaw - LIDAR_STAMP_YAW) % 360.0
        offsets[name] = -int(round(behind_deg / 360.0 * LIDAR_PERIOD_US))
    lidar2ego = np.eye(4)
    lidar2ego[:3, :3] = _yaw_rotation(-90.0)  # LiDAR y axis = ego forward, as nuScenes LIDAR_TOP
    lidar2ego[:3, 3] = SURROUND_LIDAR_POSITION
    return Rig(tuple(c[0] for c in SURROUND_CAMERAS), cam2ego, cam2img, lidar2ego, offsets)


def load_rig(path: str | os.PathLike[str] | None) -> Rig:
    """Read a calib.json, or return the built-in `surround_rig` for `None`.

    A missing key or a malformed matrix raises ValueError naming file and key.
    """
    if path is None:
        return surround_rig()
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: calibration file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    for key in ("lidar", "cameras"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
    lidar2ego = _matrix(data["lidar"], "lidar2ego", (4, 4), f"{path}: lidar")
    lidar_stamp = float(data["lidar"].get("timestamp_s", data.get("timestamp_s", 0.0)))
    cam2ego, cam2img, offsets = {}, {}, {}
    for name, cam in data["cameras"].items():
        where = f"{path}: cameras.{name}"
        cam2ego[name] = _matrix(cam, "cam2ego", (4, 4), where)
        cam2img[name] = _matrix(cam, "cam2img", (3, 3), where)
        offsets[name] = int(round((float(cam.get("timestamp_s", lidar_stamp)) - lidar_stamp) * 1e6))
    return Rig(tuple(data["cameras"]), cam2ego, cam2img, lidar2ego, offsets)
