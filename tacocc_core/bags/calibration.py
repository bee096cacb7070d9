"""The calibration file written beside every converted bag, for readers without tf2 (`calibration.yaml`).

Schema (`format: tacocc_calibration_v1`; every matrix a list of rows, float64):

    format: tacocc_calibration_v1
    base_frame: base_link          # the vehicle frame of /odom's child and of /tf_static's parent
    lidar_frame: LIDAR_TOP         # frame_id of the LiDAR cloud; the occupancy grid lives here
    lidar2base: 4x4                # LiDAR -> base_link
    cameras:                       # one entry per camera topic /<name>/image_rect/compressed
      CAM_FRONT:
        cam2lidar: 4x4             # camera (optical: x right, y down, z forward) -> LiDAR, rig only
        cam2img: 3x3               # pinhole intrinsics of the full-size image (K of camera_info)
        image_size: [900, 1600]    # (height, width) pixels
    label_grid:                    # the grid of /occupancy/gt voxel centres, LiDAR frame; null if none
      x_range: [-50.0, 50.0]
      y_range: [-50.0, 50.0]
      z_range: [-5.0, 3.0]
      voxel_size: 0.5

`cam2lidar` is the static rig transform (both sensors on the same vehicle pose). nuScenes' own
per-sample transform goes through each sensor's ego pose and so also holds the few centimetres the
vehicle moves between the LiDAR and the camera stamps; /odom carries what is needed for that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tacocc_core.geometry import GridSpec

FORMAT = "tacocc_calibration_v1"
FILE_NAME = "calibration.yaml"


class CalibrationError(ValueError):
    """A calibration file that is missing, unreadable or does not fit the schema (names file and key)."""


@dataclass(frozen=True)
class CameraCalibration:
    """One camera: cam2lidar (4, 4) float64, cam2img (3, 3) float64, image_size (height, width)."""

    cam2lidar: np.ndarray
    cam2img: np.ndarray
    image_size: tuple[int, int]


@dataclass(frozen=True)
class BagCalibration:
    """The rig of one bag; `cameras` keeps the order of the file (the order the converter wrote)."""

    lidar2base: np.ndarray
    cameras: dict[str, CameraCalibration]
    lidar_frame: str = "LIDAR_TOP"
    base_frame: str = "base_link"
    label_grid: GridSpec | None = field(default=None)


def _grid_to_dict(grid: GridSpec | None) -> dict | None:
    if grid is None:
        return None
    lo, hi = np.asarray(grid.lower), grid.upper
    sizes = set(grid.voxel_size)
    if len(sizes) != 1:
        raise ValueError(f"label_grid: the file holds cubic voxels only, got voxel_size {grid.voxel_size}")
    return {
        "x_range": [float(lo[0]), float(hi[0])],
        "y_range": [float(lo[1]), float(hi[1])],
        "z_range": [float(lo[2]), float(hi[2])],
        "voxel_size": float(grid.voxel_size[0]),
    }


def calibration_to_dict(calib: BagCalibration) -> dict:
    """The YAML document of `calib` (plain lists and floats)."""
    return {
        "format": FORMAT,
        "base_frame": calib.base_frame,
        "lidar_frame": calib.lidar_frame,
        "lidar2base": np.asarray(calib.lidar2base, dtype=np.float64).tolist(),
        "cameras": {
            name: {
                "cam2lidar": np.asarray(cam.cam2lidar, dtype=np.float64).tolist(),
                "cam2img": np.asarray(cam.cam2img, dtype=np.float64).tolist(),
                "image_size": [int(cam.image_size[0]), int(cam.image_size[1])],
            }
            for name, cam in calib.cameras.items()
        },
        "label_grid": _grid_to_dict(calib.label_grid),
    }


def write_calibration(path: str | os.PathLike[str], calib: BagCalibration) -> Path:
    """Write `calib` to `path` through a temporary name and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = "# Rig calibration of the bag in this folder; schema in tacocc_core/bags/calibration.py\n"
    text += yaml.safe_dump(calibration_to_dict(calib), sort_keys=False, default_flow_style=None)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _matrix(value: object, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: expected a {shape[0]}x{shape[1]} matrix of numbers, got {value!r}") from None
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        raise CalibrationError(f"{where}: expected a finite {shape[0]}x{shape[1]} matrix, got shape {matrix.shape}")
    if shape == (4, 4):
        rotation = matrix[:3, :3]
        if not np.allclose(matrix[3], [0, 0, 0, 1]) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5):
            raise CalibrationError(f"{where}: not a rigid transform (rotation not orthonormal or last row not 0 0 0 1)")
    return matrix


def _key(mapping: dict, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise CalibrationError(f"{where}: missing key {key!r}")
    return mapping[key]


def calibration_from_dict(data: object, source: str = "<dict>") -> BagCalibration:
    """Validate a YAML document into a BagCalibration; errors name `source` and the key."""
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: expected a mapping, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise CalibrationError(f"{source}: format is {data.get('format')!r}, expected {FORMAT!r}")
    cameras_data = _key(data, "cameras", source)
    if not isinstance(cameras_data, dict) or not cameras_data:
        raise CalibrationError(f"{source}: cameras must be a non-empty mapping of camera name -> calibration")
    cameras = {}
    for name, cam in cameras_data.items():
        where = f"{source}: cameras.{name}"
        size = _key(cam, "image_size", where)
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise CalibrationError(f"{where}.image_size: expected [height, width] positive integers, got {size!r}")
        cameras[str(name)] = CameraCalibration(
            cam2lidar=_matrix(_key(cam, "cam2lidar", where), (4, 4), f"{where}.cam2lidar"),
            cam2img=_matrix(_key(cam, "cam2img", where), (3, 3), f"{where}.cam2img"),
            image_size=(size[0], size[1]),
        )
    grid_data = data.get("label_grid")
    grid = None
    if grid_data is not None:
        where = f"{source}: label_grid"
        try:
            grid = GridSpec.from_ranges(
                tuple(_key(grid_data, "x_range", where)),
                tuple(_key(grid_data, "y_range", where)),
                tuple(_key(grid_data, "z_range", where)),
                float(_key(grid_data, "voxel_size", where)),
            )
        except (TypeError, ValueError) as err:
            raise CalibrationError(f"{where}: {err}") from None
    frames = {}
    for key in ("base_frame", "lidar_frame"):
        value = _key(data, key, source)
        if not isinstance(value, str) or not value:
            raise CalibrationError(f"{source}: {key} must be a non-empty frame name, got {value!r}")
        frames[key] = value
    return BagCalibration(
        lidar2base=_matrix(_key(data, "lidar2base", source), (4, 4), f"{source}: lidar2base"),
        cameras=cameras,
        label_grid=grid,
        **frames,
    )


def read_calibration(path: str | os.PathLike[str]) -> BagCalibration:
    """Read a calibration file, or the `calibration.yaml` inside a bag folder."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: calibration file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise CalibrationError(f"{path}: not a readable YAML file ({err})") from None
    return calibration_from_dict(data, str(path))
