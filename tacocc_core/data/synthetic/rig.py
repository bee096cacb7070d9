"""The nuScenes sensor rig (six cameras + LIDAR_TOP) read from a calibration file.

The file is laid out as `fixtures/nuscenes_frame/calib.json`: 4x4 `a2b` matrices, 3x3 intrinsics of
1600x900 images, per-sensor timestamps in seconds.
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


def load_rig(path: str | os.PathLike[str]) -> Rig:
    """Read a calib.json; a missing key or a malformed matrix raises ValueError naming file and key."""
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
