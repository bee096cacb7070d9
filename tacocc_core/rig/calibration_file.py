"""The node's rig calibration file: camera -> LiDAR extrinsics and intrinsics, for when TF is not available.

The node takes camera -> LiDAR transforms from TF or from this file (`tacocc_ros/node/extrinsics.py`);
`tacocc calibration` writes one from a nuScenes scene, a bag or a calib.json and checks one
(`tacocc_core/rig/`). The converter's `calibration.yaml` beside each bag (another layout, see
`tacocc_core/bags/calibration.py`) is read here too. Schema (YAML, metres):

```yaml
lidar_frame: LIDAR_TOP           # frame id of the PointCloud2 (required)
ego_frame: base_link             # child frame of the odometry (optional, default base_link)
lidar2ego: [[...4 floats], x4]   # LiDAR -> ego (base_link) 4x4 (optional, default identity)
cameras:                         # one entry per camera, keyed by the camera name of the model config
  CAM_FRONT:
    frame_id: CAM_FRONT          # frame id of its images (optional, default the camera name)
    cam2lidar: [[...], x4]       # camera (z forward, x right, y down) -> LiDAR 4x4 (required)
    cam2img: [[...], x3]         # 3x3 intrinsics of the full-size image (required)
```

Matrices are nested lists, row-major; rotations must be orthonormal (to 1e-3) with determinant +1. `load_calibration`
rejects anything else with the file, the key and the offending value; `save_calibration` writes
atomically (temp file + rename).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tacocc_core.bags.calibration import FORMAT as BAG_CALIBRATION_FORMAT
from tacocc_core.bags.calibration import BagCalibration
from tacocc_core.bags.calibration import CalibrationError as BagCalibrationError
from tacocc_core.bags.calibration import calibration_from_dict as bag_calibration_from_dict
from tacocc_core.strict_yaml import read_yaml_mapping


class CalibrationError(ValueError):
    """A calibration file that is missing, unreadable or does not fit the schema."""


@dataclass(frozen=True)
class CameraCalibration:
    """One camera: `cam2lidar` (4, 4) float64, `cam2img` (3, 3) float64 of the full-size image."""

    cam2lidar: np.ndarray
    cam2img: np.ndarray
    frame_id: str


@dataclass(frozen=True)
class RigCalibration:
    """The rig: LiDAR frame, LiDAR -> ego (4, 4) float64, cameras by name."""

    lidar_frame: str
    cameras: dict[str, CameraCalibration]
    lidar2ego: np.ndarray = field(default_factory=lambda: np.eye(4))
    ego_frame: str = "base_link"


def _matrix(value: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: expected a {shape[0]}x{shape[1]} matrix of numbers, got {value!r}") from None
    if array.shape != shape:
        raise CalibrationError(f"{where}: expected a {shape[0]}x{shape[1]} matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise CalibrationError(f"{where}: non-finite entries in {array.tolist()}")
    return array


def _rigid(value: Any, where: str) -> np.ndarray:
    matrix = _matrix(value, (4, 4), where)
    rotation = matrix[:3, :3]
    if not np.allclose(matrix[3], [0, 0, 0, 1]) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-3):
        raise CalibrationError(f"{where}: not a rigid transform (orthonormal rotation, last row 0 0 0 1)")
    if np.linalg.det(rotation) < 0:  # orthonormal but a mirror image: no camera or LiDAR mounting does that
        raise CalibrationError(f"{where}: not a rigid transform (the rotation is a reflection, determinant -1)")
    return matrix


def calibration_from_dict(data: Any, source: str = "<dict>") -> RigCalibration:
    """Validate a dict (as read from YAML) into a RigCalibration; `source` names it in errors."""
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - {"lidar_frame", "ego_frame", "lidar2ego", "cameras"}
    if unknown:
        raise CalibrationError(
            f"{source}: unknown keys {sorted(unknown)}; allowed: lidar_frame, ego_frame, lidar2ego, cameras"
        )
    lidar_frame = data.get("lidar_frame")
    if not isinstance(lidar_frame, str) or not lidar_frame:
        raise CalibrationError(f"{source}: lidar_frame must be a non-empty string, got {lidar_frame!r}")
    ego_frame = data.get("ego_frame", "base_link")
    if not isinstance(ego_frame, str) or not ego_frame:
        raise CalibrationError(f"{source}: ego_frame must be a non-empty string, got {ego_frame!r}")
    lidar2ego = _rigid(data["lidar2ego"], f"{source}: lidar2ego") if "lidar2ego" in data else np.eye(4)
    cameras_raw = data.get("cameras")
    if not isinstance(cameras_raw, dict) or not cameras_raw:
        raise CalibrationError(f"{source}: cameras must be a non-empty mapping of camera name -> calibration")
    cameras = {}
    for name, entry in cameras_raw.items():
        where = f"{source}: cameras.{name}"
        if not isinstance(entry, dict):
            raise CalibrationError(f"{where}: expected a mapping, got {type(entry).__name__}")
        extra = set(entry) - {"frame_id", "cam2lidar", "cam2img"}
        if extra:
            raise CalibrationError(f"{where}: unknown keys {sorted(extra)}; allowed: frame_id, cam2lidar, cam2img")
        for key in ("cam2lidar", "cam2img"):
            if key not in entry:
                raise CalibrationError(f"{where}: missing {key}")
        cameras[str(name)] = CameraCalibration(
            cam2lidar=_rigid(entry["cam2lidar"], f"{where}.cam2lidar"),
            cam2img=_matrix(entry["cam2img"], (3, 3), f"{where}.cam2img"),
            frame_id=str(entry.get("frame_id", name)),
        )
    return RigCalibration(lidar_frame, cameras, lidar2ego, ego_frame)


def from_bag_calibration(bag: BagCalibration) -> RigCalibration:
    """The rig of a converter-written `calibration.yaml` (tacocc_core.bags.calibration) as the node sees it."""
    cameras = {
        name: CameraCalibration(cam2lidar=cam.cam2lidar, cam2img=cam.cam2img, frame_id=name)
        for name, cam in bag.cameras.items()
    }
    return RigCalibration(bag.lidar_frame, cameras, np.asarray(bag.lidar2base, dtype=np.float64), bag.base_frame)


def load_calibration(path: str | os.PathLike[str]) -> RigCalibration:
    """Read and validate a calibration YAML file.

    Two layouts are read: the one in the module docstring, and the file `tacocc convert-nuscenes` writes
    into every bag (`format: tacocc_calibration_v1`, read by tacocc_core.bags.calibration).
    """
    path = Path(path)
    data = read_yaml_mapping(path, "calibration", CalibrationError)
    if isinstance(data, dict) and data.get("format") == BAG_CALIBRATION_FORMAT:
        try:
            return from_bag_calibration(bag_calibration_from_dict(data, str(path)))
        except BagCalibrationError as err:
            raise CalibrationError(str(err)) from None
    return calibration_from_dict(data, str(path))


def calibration_to_dict(calibration: RigCalibration) -> dict[str, Any]:
    """The inverse of `calibration_from_dict`: plain lists, ready for YAML."""
    return {
        "lidar_frame": calibration.lidar_frame,
        "ego_frame": calibration.ego_frame,
        "lidar2ego": np.asarray(calibration.lidar2ego).tolist(),
        "cameras": {
            name: {"frame_id": cam.frame_id, "cam2lidar": cam.cam2lidar.tolist(), "cam2img": cam.cam2img.tolist()}
            for name, cam in calibration.cameras.items()
        },
    }


def save_calibration(path: str | os.PathLike[str], calibration: RigCalibration) -> None:
    """Write a calibration YAML file atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(calibration_to_dict(calibration), handle, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
