"""The rig calibration file: one schema for the occupancy node, converted bags and `tacocc calibration`.

The node takes camera -> LiDAR transforms from TF or from this file (`tacocc_ros/node/extrinsics.py`);
`tacocc convert-nuscenes` writes one as `calibration.yaml` beside every bag; `tacocc calibration` writes
one from a nuScenes scene, a bag's /tf_static + camera_info or a calib.json, and checks one
(`tacocc_core/rig/`); the training node reads the one of its bags or derives the rig from the bag.
Schema (YAML, metres, every matrix a list of rows, float64):

```yaml
format: tacocc_calibration_v2    # the layout's version (optional when reading; always written)
lidar_frame: LIDAR_TOP           # frame id of the PointCloud2; the occupancy grid lives here (required)
ego_frame: base_link             # child frame of the odometry (optional, default base_link)
lidar2ego: [[...4 floats], x4]   # LiDAR -> ego (base_link) 4x4 (optional, default identity)
cameras:                         # one entry per camera, keyed by the camera name of the model config
  CAM_FRONT:
    frame_id: CAM_FRONT          # frame id of its images (optional, default the camera name)
    cam2lidar: [[...], x4]       # camera (z forward, x right, y down) -> LiDAR 4x4 (required)
    cam2img: [[...], x3]         # 3x3 intrinsics of the full-size image (required)
    image_size: [900, 1600]      # (height, width) pixels of the full-size image (optional)
label_grid:                      # grid of the bag's label voxel centres, LiDAR frame (optional)
  x_range: [-50.0, 50.0]
  y_range: [-50.0, 50.0]
  z_range: [-5.0, 3.0]
  voxel_size: 0.5
```

`cam2lidar` is the static rig transform (both sensors on the same vehicle pose; the odometry carries the
vehicle's motion between the LiDAR and camera stamps). Rotations must be orthonormal (to 1e-3) with
determinant +1. `load_calibration` rejects anything else with the file, the key and the offending value;
`save_calibration` writes atomically (temp file + rename).

The older layout of converted bags (`format: tacocc_calibration_v1`: `base_frame`, `lidar2base`, a
required `image_size` per camera) is still read: `load_calibration` converts it and reports that
through `note` (naming the file); `tacocc calibration --check OLD --out NEW` rewrites it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tacocc_core.geometry import GridSpec
from tacocc_core.strict_yaml import read_yaml_mapping

FORMAT = "tacocc_calibration_v2"
V1_FORMAT = "tacocc_calibration_v1"
FILE_NAME = "calibration.yaml"  # the name beside a bag
TOP_KEYS = ("format", "lidar_frame", "ego_frame", "lidar2ego", "cameras", "label_grid")
CAMERA_KEYS = ("frame_id", "cam2lidar", "cam2img", "image_size")

log = logging.getLogger(__name__)


class CalibrationError(ValueError):
    """A calibration file that is missing, unreadable or does not fit the schema."""


@dataclass(frozen=True)
class CameraCalibration:
    """One camera: cam2lidar (4, 4) float64, cam2img (3, 3) float64, image_size (height, width) or None."""

    cam2lidar: np.ndarray
    cam2img: np.ndarray
    frame_id: str
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class RigCalibration:
    """The rig: LiDAR frame, LiDAR -> ego (4, 4) float64, cameras by name (in file order), the label grid."""

    lidar_frame: str
    cameras: dict[str, CameraCalibration]
    lidar2ego: np.ndarray = field(default_factory=lambda: np.eye(4))
    ego_frame: str = "base_link"
    label_grid: GridSpec | None = None


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


def _image_size(value: Any, where: str) -> tuple[int, int]:
    ok = isinstance(value, list | tuple) and len(value) == 2
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise CalibrationError(f"{where}: expected [height, width] positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _grid(value: Any, where: str) -> GridSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CalibrationError(f"{where}: expected a mapping with x_range, y_range, z_range, voxel_size")
    missing = [k for k in ("x_range", "y_range", "z_range", "voxel_size") if k not in value]
    if missing:
        raise CalibrationError(f"{where}: missing key {missing[0]!r}")
    try:
        return GridSpec.from_ranges(
            tuple(value["x_range"]), tuple(value["y_range"]), tuple(value["z_range"]), float(value["voxel_size"])
        )
    except (TypeError, ValueError) as err:
        raise CalibrationError(f"{where}: {err}") from None


def _grid_to_dict(grid: GridSpec) -> dict[str, Any]:
    lo, hi = np.asarray(grid.lower), grid.upper
    if len(set(grid.voxel_size)) != 1:
        raise ValueError(f"label_grid: the file holds cubic voxels only, got voxel_size {grid.voxel_size}")
    return {
        "x_range": [float(lo[0]), float(hi[0])],
        "y_range": [float(lo[1]), float(hi[1])],
        "z_range": [float(lo[2]), float(hi[2])],
        "voxel_size": float(grid.voxel_size[0]),
    }


def _frame(data: dict, key: str, default: str | None, source: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise CalibrationError(f"{source}: {key} must be a non-empty string, got {value!r}")
    return value


def calibration_from_dict(data: Any, source: str = "<dict>") -> RigCalibration:
    """Validate a dict (as read from YAML, the current layout) into a RigCalibration; `source` names it in errors."""
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: expected a mapping, got {type(data).__name__}")
    if data.get("format", FORMAT) != FORMAT:
        raise CalibrationError(
            f"{source}: format is {data.get('format')!r}; read here: {FORMAT!r} (or none), {V1_FORMAT!r}"
        )
    unknown = set(data) - set(TOP_KEYS)
    if unknown:
        raise CalibrationError(f"{source}: unknown keys {sorted(unknown)}; allowed: {', '.join(TOP_KEYS)}")
    if "lidar_frame" not in data:
        raise CalibrationError(f"{source}: lidar_frame must be a non-empty string, got None")
    lidar_frame = _frame(data, "lidar_frame", None, source)
    ego_frame = _frame(data, "ego_frame", "base_link", source)
    lidar2ego = _rigid(data["lidar2ego"], f"{source}: lidar2ego") if "lidar2ego" in data else np.eye(4)
    cameras_raw = data.get("cameras")
    if not isinstance(cameras_raw, dict) or not cameras_raw:
        raise CalibrationError(f"{source}: cameras must be a non-empty mapping of camera name -> calibration")
    cameras = {}
    for name, entry in cameras_raw.items():
        where = f"{source}: cameras.{name}"
        if not isinstance(entry, dict):
            raise CalibrationError(f"{where}: expected a mapping, got {type(entry).__name__}")
        extra = set(entry) - set(CAMERA_KEYS)
        if extra:
            raise CalibrationError(f"{where}: unknown keys {sorted(extra)}; allowed: {', '.join(CAMERA_KEYS)}")
        for key in ("cam2lidar", "cam2img"):
            if key not in entry:
                raise CalibrationError(f"{where}: missing {key}")
        size = entry.get("image_size")
        cameras[str(name)] = CameraCalibration(
            cam2lidar=_rigid(entry["cam2lidar"], f"{where}.cam2lidar"),
            cam2img=_matrix(entry["cam2img"], (3, 3), f"{where}.cam2img"),
            frame_id=str(entry.get("frame_id", name)),
            image_size=None if size is None else _image_size(size, f"{where}.image_size"),
        )
    label_grid = _grid(data.get("label_grid"), f"{source}: label_grid")
    return RigCalibration(lidar_frame, cameras, lidar2ego, ego_frame, label_grid)


def v1_to_dict(data: dict, source: str) -> dict[str, Any]:
    """A `tacocc_calibration_v1` document -> the current layout (its keys renamed; image_size was required)."""
    for key in ("base_frame", "lidar_frame", "lidar2base", "cameras"):
        if key not in data:
            raise CalibrationError(f"{source}: missing key {key!r} ({V1_FORMAT} layout)")
    cameras = data["cameras"]
    if not isinstance(cameras, dict) or not cameras:
        raise CalibrationError(f"{source}: cameras must be a non-empty mapping of camera name -> calibration")
    out_cameras = {}
    for name, cam in cameras.items():
        where = f"{source}: cameras.{name}"
        if not isinstance(cam, dict):
            raise CalibrationError(f"{where}: expected a mapping, got {type(cam).__name__}")
        for key in ("cam2lidar", "cam2img", "image_size"):
            if key not in cam:
                raise CalibrationError(f"{where}: missing key {key!r} ({V1_FORMAT} layout)")
        out_cameras[name] = {"frame_id": str(name), **{k: cam[k] for k in ("cam2lidar", "cam2img", "image_size")}}
    return {
        "format": FORMAT,
        "lidar_frame": data["lidar_frame"],
        "ego_frame": data["base_frame"],
        "lidar2ego": data["lidar2base"],
        "cameras": out_cameras,
        "label_grid": data.get("label_grid"),
    }


def load_calibration(path: str | os.PathLike[str], note: Callable[[str], object] | None = None) -> RigCalibration:
    """Read and validate a calibration file, or the `calibration.yaml` inside a bag folder.

    An old `tacocc_calibration_v1` file is converted; `note` (default: this module's logger, warning)
    receives one line naming the file and saying so.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    data = read_yaml_mapping(path, "calibration", CalibrationError)
    if isinstance(data, dict) and data.get("format") == V1_FORMAT:
        rig = calibration_from_dict(v1_to_dict(data, str(path)), str(path))
        (note or log.warning)(
            f"{path}: old {V1_FORMAT} layout, read as {FORMAT} "
            f"(`tacocc calibration --check {path} --out NEW` writes it in the current layout)"
        )
        return rig
    return calibration_from_dict(data, str(path))


def calibration_to_dict(calibration: RigCalibration) -> dict[str, Any]:
    """The inverse of `calibration_from_dict`: plain lists, ready for YAML (optional keys only when set)."""
    cameras: dict[str, Any] = {}
    for name, cam in calibration.cameras.items():
        entry: dict[str, Any] = {
            "frame_id": cam.frame_id,
            "cam2lidar": np.asarray(cam.cam2lidar, dtype=np.float64).tolist(),
            "cam2img": np.asarray(cam.cam2img, dtype=np.float64).tolist(),
        }
        if cam.image_size is not None:
            entry["image_size"] = [int(cam.image_size[0]), int(cam.image_size[1])]
        cameras[name] = entry
    out: dict[str, Any] = {
        "format": FORMAT,
        "lidar_frame": calibration.lidar_frame,
        "ego_frame": calibration.ego_frame,
        "lidar2ego": np.asarray(calibration.lidar2ego, dtype=np.float64).tolist(),
        "cameras": cameras,
    }
    if calibration.label_grid is not None:
        out["label_grid"] = _grid_to_dict(calibration.label_grid)
    return out


def save_calibration(path: str | os.PathLike[str], calibration: RigCalibration) -> Path:
    """Write a calibration YAML file atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Rig calibration (schema: tacocc_core/rig/calibration_file.py)\n"
    text += yaml.safe_dump(calibration_to_dict(calibration), sort_keys=False, default_flow_style=None)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
