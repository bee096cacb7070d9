"""nuScenes keyframes -> `Frame`s, through nuscenes-devkit; the same code reads real and generated data.

Per keyframe: six images resized to the config size (`ImageTransform.resize_crop_bottom`, intrinsics
updated by the same transform); camera -> LiDAR extrinsics through the global frame with each sensor's
own ego pose; the LiDAR sweep plus `config.lidar.sweeps` previous sweeps motion-compensated into the
keyframe's LiDAR frame by `LidarPointCloud.from_file_multisweep` (time lag in seconds as 5th column);
`lidar2global`; the stamp; and the occupancy labels resampled onto the config grid when a label source
is given.
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud

from tacocc_core.config import ModelConfig
from tacocc_core.data.label_resample import resample_labels
from tacocc_core.frame import Frame
from tacocc_core.geometry import ImageTransform, invert_transform, pose_to_transform
from tacocc_core.labels import OCC3D_GRID, SURROUNDOCC_GRID, LabelFileError, load_occ3d, load_surroundocc

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset record or file that cannot be read as expected (names the token or file)."""


LabelSource = Literal["surroundocc", "occ3d", "none"]  # which label files the reader loads


@dataclass(frozen=True)
class ReaderOptions:
    """How the reader finds labels and treats incomplete samples.

    Args:
        labels: "surroundocc" (`<label_root>/samples/<LIDAR_TOP file name>.npy`), "occ3d"
            (`<label_root>/<scene name>/<sample token>/labels.npz`, ego frame), or "none".
        label_root: folder of the label files; default `<dataroot>/surroundocc` or `<dataroot>/gts`.
        missing_camera: "error" raises, "skip" drops the sample with a warning, "blank" gives a zero
            image with `camera_valid` False.
        min_distance: points closer than this to the LiDAR (metres) are dropped (the ego's roof).
        intensity_scale: multiplies the LiDAR intensity of every point (0: a driver without intensity;
            other values: a sensor of another gain), to measure what the network takes from it.
    """

    labels: LabelSource = "surroundocc"
    label_root: str | None = None
    missing_camera: Literal["error", "skip", "blank"] = "error"
    min_distance: float = 1.0
    intensity_scale: float = 1.0


def read_pcd_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """A nuScenes `.pcd.bin` -> (N, 5) float32 [x, y, z, intensity, ring]; truncated files are rejected."""
    path = Path(path)
    read_pcd_bin_check(path)
    return np.fromfile(path, dtype=np.float32).reshape(-1, 5)


def sensor2global(nusc: NuScenes, sample_data_token: str) -> np.ndarray:
    """(4, 4) sensor -> global of one sample_data (calibrated_sensor, then its own ego pose)."""
    sd = nusc.get("sample_data", sample_data_token)
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    return pose_to_transform(pose["translation"], pose["rotation"]) @ pose_to_transform(
        cs["translation"], cs["rotation"]
    )


class NuScenesReader:
    """Reads keyframes of a nuScenes-layout dataset as `Frame`s on the grid and image size of `config`."""

    def __init__(self, nusc: NuScenes, config: ModelConfig, options: ReaderOptions | None = None) -> None:
        self.nusc = nusc
        self.config = config
        self.options = options or ReaderOptions()
        self.grid = config.grid.spec()
        default = {"surroundocc": "surroundocc", "occ3d": "gts", "none": ""}[self.options.labels]
        self.label_root = Path(self.options.label_root or Path(nusc.dataroot) / default)

    @classmethod
    def open(cls, dataroot: str | os.PathLike[str], version: str, config: ModelConfig, options=None):
        """Load the tables with nuscenes-devkit; a missing table folder raises DataError."""
        table_dir = Path(dataroot) / version
        if not table_dir.is_dir():
            raise DataError(f"{table_dir}: no nuScenes tables for version {version!r}")
        return cls(NuScenes(version=version, dataroot=str(dataroot), verbose=False), config, options)

    def camera_problem(self, sample_token: str) -> str | None:
        """Why a sample's cameras cannot be read (missing channel or file), or None."""
        sample = self.nusc.get("sample", sample_token)
        for name in self.config.cameras.names:
            if name not in sample["data"]:
                return f"sample {sample_token}: no {name} sample_data"
            path = Path(self.nusc.dataroot) / self.nusc.get("sample_data", sample["data"][name])["filename"]
            if not path.is_file():
                return f"sample {sample_token}: {name} image {path} not found"
        return None

    def frame(self, sample_token: str) -> Frame:
        """The keyframe `sample_token` as a Frame (see the module docstring)."""
        nusc = self.nusc
        try:
            sample = nusc.get("sample", sample_token)
        except KeyError:
            raise DataError(f"unknown sample token {sample_token!r}") from None
        if "LIDAR_TOP" not in sample["data"]:
            raise DataError(f"sample {sample_token}: no LIDAR_TOP sample_data")
        lidar_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        lidar2global = sensor2global(nusc, lidar_sd["token"])
        global2lidar = invert_transform(lidar2global)
        points = self._points(sample, lidar_sd)

        h, w = self.config.cameras.image_size
        names = self.config.cameras.names
        images = np.zeros((len(names), h, w, 3), dtype=np.uint8)
        cam2img = np.tile(np.eye(3), (len(names), 1, 1))
        cam2lidar = np.tile(np.eye(4), (len(names), 1, 1))
        valid = np.ones(len(names), dtype=bool)
        for v, name in enumerate(names):
            sd_token = sample["data"].get(name)
            path = Path(nusc.dataroot) / nusc.get("sample_data", sd_token)["filename"] if sd_token else None
            image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path is not None and path.is_file() else None
            if image is None:
                problem = f"sample {sample_token}: camera {name} " + (f"image {path} unreadable" if path else "missing")
                if self.options.missing_camera == "blank":
                    valid[v] = False
                    continue
                raise DataError(problem)
            cs = nusc.get("calibrated_sensor", nusc.get("sample_data", sd_token)["calibrated_sensor_token"])
            transform = ImageTransform.resize_crop_bottom((image.shape[0], image.shape[1]), (h, w))
            images[v] = transform.apply_to_image(image[:, :, ::-1])
            cam2img[v] = transform.apply_to_intrinsics(np.asarray(cs["camera_intrinsic"], dtype=np.float64))
            cam2lidar[v] = global2lidar @ sensor2global(nusc, sd_token)
        return Frame(
            images=images,
            cam2img=cam2img,
            cam2lidar=cam2lidar,
            points=points,
            lidar2global=lidar2global,
            stamp_ns=int(lidar_sd["timestamp"]) * 1000,
            labels=self._labels(sample, lidar_sd),
            camera_valid=valid,
            stream_id=sample["scene_token"],
            sample_token=sample_token,
        )

    def _points(self, sample: dict, lidar_sd: dict) -> np.ndarray:
        """(N, 5) float32 [x, y, z, intensity, time_lag_s] in the keyframe LiDAR frame."""
        nsweeps = self.config.lidar.sweeps + 1
        sd: dict | None = lidar_sd
        n = 0
        while sd and n < nsweeps:  # check every file first so that an error names the bad one
            read_pcd_bin_check(Path(self.nusc.dataroot) / sd["filename"])
            sd = self.nusc.get("sample_data", sd["prev"]) if sd["prev"] else None
            n += 1
        pc, times = LidarPointCloud.from_file_multisweep(
            self.nusc, sample, "LIDAR_TOP", "LIDAR_TOP", nsweeps=nsweeps, min_distance=self.options.min_distance
        )
        points = np.concatenate([pc.points.T, times.T], axis=1).astype(np.float32)
        if self.options.intensity_scale != 1.0:
            points[:, 3] *= np.float32(self.options.intensity_scale)
        return points

    def labels(self, sample_token: str) -> np.ndarray | None:
        """The keyframe's labels on the config grid (uint8, LiDAR frame), or None when it has no label file."""
        try:
            sample = self.nusc.get("sample", sample_token)
        except KeyError:
            raise DataError(f"unknown sample token {sample_token!r}") from None
        if "LIDAR_TOP" not in sample["data"]:
            raise DataError(f"sample {sample_token}: no LIDAR_TOP sample_data")
        return self._labels(sample, self.nusc.get("sample_data", sample["data"]["LIDAR_TOP"]))

    def _labels(self, sample: dict, lidar_sd: dict) -> np.ndarray | None:
        kind = self.options.labels
        if kind == "none":
            return None
        if kind == "surroundocc":
            path = self.label_root / "samples" / f"{Path(lidar_sd['filename']).name}.npy"
            if not path.is_file():
                return None
            return resample_labels(load_surroundocc(path), SURROUNDOCC_GRID, self.grid)
        scene = self.nusc.get("scene", sample["scene_token"])
        path = self.label_root / scene["name"] / sample["token"] / "labels.npz"
        if not path.is_file():
            return None
        cs = self.nusc.get("calibrated_sensor", lidar_sd["calibrated_sensor_token"])
        lidar2ego = pose_to_transform(cs["translation"], cs["rotation"])
        return resample_labels(load_occ3d(path), OCC3D_GRID, self.grid, dst2src=lidar2ego)

    def occ3d_ground_truth(self, sample_token: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The keyframe's Occ3D ground truth as the challenge scores it, or None (no file, or labels not Occ3D).

        Returns:
            semantics: (200, 200, 16) uint8 Occ3D labels (0 others, 1..16, 17 free) on OCC3D_GRID, ego frame.
            mask_camera: (200, 200, 16) bool, the voxels scored.
            lidar2ego: (4, 4) float64 of the keyframe's LiDAR.
        """
        if self.options.labels != "occ3d":
            return None
        try:
            sample = self.nusc.get("sample", sample_token)
        except KeyError:
            raise DataError(f"unknown sample token {sample_token!r}") from None
        lidar_sd = self.nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        path = self.label_root / self.nusc.get("scene", sample["scene_token"])["name"] / sample_token / "labels.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                semantics, mask = data["semantics"], data["mask_camera"].astype(bool)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: not an Occ3D labels.npz with semantics and mask_camera ({err})") from None
        if semantics.shape != OCC3D_GRID.shape or mask.shape != OCC3D_GRID.shape:
            raise DataError(f"{path}: Occ3D arrays must be {OCC3D_GRID.shape}, got {semantics.shape} and {mask.shape}")
        cs = self.nusc.get("calibrated_sensor", lidar_sd["calibrated_sensor_token"])
        return semantics, mask, pose_to_transform(cs["translation"], cs["rotation"])


def read_pcd_bin_check(path: Path) -> None:
    """Raise DataError when a sweep file is missing or truncated (size not a multiple of 20 bytes)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path}: LiDAR file not found") from None
    if size % 20:
        raise DataError(f"{path}: {size} bytes is not a whole number of 5-float32 points (truncated?)")


__all__ = ["DataError", "LabelFileError", "NuScenesReader", "ReaderOptions", "read_pcd_bin", "sensor2global"]
