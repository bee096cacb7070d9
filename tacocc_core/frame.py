"""One synchronised sensor frame as numpy arrays: what the dataset reader yields and `Predictor.predict` takes.

Frames: the keyframe's LiDAR frame is the reference frame of everything in a `Frame`; the voxel grid
lives in it too. Camera order follows `CameraConfig.names`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """A LiDAR sweep with the six images nearest to it in time.

    Args:
        images: (V, H, W, 3) uint8 RGB, one per camera (V = number of cameras).
        cam2img: (V, 3, 3) float64 intrinsics of `images` as given (after any resize/crop).
        cam2lidar: (V, 4, 4) float64 camera -> LiDAR extrinsics.
        points: (N, 5) float32 [x, y, z, intensity, time_lag_s], LiDAR frame, previous sweeps already
            motion-compensated into it; time_lag_s = keyframe stamp - sweep stamp (>= 0).
        lidar2global: (4, 4) float64 pose of the LiDAR in the world at `stamp_ns` (ego2global @ lidar2ego).
        stamp_ns: LiDAR stamp in integer nanoseconds.
        labels: (X, Y, Z) uint8 occupancy grid (0 empty, 1..16, 255 ignore), or None when unlabelled.
        camera_valid: (V,) bool, False where a camera was missing (its image is zeros).
        stream_id: identifies the sequence (scene token, bag name); the temporal state resets when it changes.
        sample_token: the nuScenes sample token (or another unique id) of this frame, for reports.
    """

    images: np.ndarray
    cam2img: np.ndarray
    cam2lidar: np.ndarray
    points: np.ndarray
    lidar2global: np.ndarray
    stamp_ns: int
    labels: np.ndarray | None = None
    camera_valid: np.ndarray | None = None
    stream_id: str = ""
    sample_token: str = ""
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.camera_valid is None:
            self.camera_valid = np.ones(len(self.images), dtype=bool)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field whose shape or type is off."""
        v = len(self.images)
        _expect(self.images, (v, None, None, 3), np.uint8, "images")
        _expect(self.cam2img, (v, 3, 3), None, "cam2img")
        _expect(self.cam2lidar, (v, 4, 4), None, "cam2lidar")
        _expect(self.points, (None, 5), np.float32, "points")
        _expect(self.lidar2global, (4, 4), None, "lidar2global")
        _expect(self.camera_valid, (v,), np.bool_, "camera_valid")
        if self.labels is not None:
            _expect(self.labels, (None, None, None), np.uint8, "labels")

    @property
    def num_cameras(self) -> int:
        return len(self.images)


def _expect(array: np.ndarray | None, shape: tuple, dtype: type | None, name: str) -> None:
    if not isinstance(array, np.ndarray):
        raise ValueError(f"Frame.{name}: expected a numpy array, got {type(array).__name__}")
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"Frame.{name}: expected shape {want}, got {array.shape}")
    if dtype is not None and array.dtype != dtype:
        raise ValueError(f"Frame.{name}: expected dtype {np.dtype(dtype).name}, got {array.dtype}")
