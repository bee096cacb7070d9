"""From synchronised messages (already converted to numpy) to the `Frame` that `Predictor.predict` takes.

Plain numpy, no rclpy, thread-safe where the node shares an object between its callbacks and its worker:

- `PoseBuffer`: ego poses from odometry by stamp; a pose between two odometry messages is interpolated
  (translation linearly, rotation by slerp), one just outside them is the nearest within a tolerance.
- `SweepBuffer`: the last LiDAR sweeps in their own frames; `accumulate` moves the previous ones into
  the current LiDAR frame by the poses and appends the time lag, as nuScenes' multi-sweep input does
  (`LidarPointCloud.from_file_multisweep`: current sweep first, then older ones, lag = now - sweep).
- `camera_arrays`: decoded images + full-size intrinsics + extrinsics -> the Frame's camera arrays,
  a camera without an image, intrinsics or extrinsics left out (zeros, `camera_valid` False).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from tacocc_core.geometry import ImageTransform, invert_transform, make_transform

PoseLookup = Callable[[int], "np.ndarray | None"]


def pose_xyzw_to_transform(translation: Sequence[float], quaternion_xyzw: Sequence[float]) -> np.ndarray:
    """A ROS pose (position, orientation quaternion in x, y, z, w order) -> (4, 4) float64 child2parent."""
    quaternion = np.asarray(quaternion_xyzw, dtype=np.float64)
    norm = np.linalg.norm(quaternion)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"orientation quaternion (x, y, z, w) {quaternion.tolist()} has no direction")
    position = np.asarray(translation, dtype=np.float64)
    if position.shape != (3,) or not np.isfinite(position).all():
        raise ValueError(f"position must be 3 finite numbers, got {position.tolist()}")
    return make_transform(Rotation.from_quat(quaternion / norm).as_matrix(), position)


class PoseBuffer:
    """Ego -> global poses (4, 4) by stamp, bounded; cleared when stamps go back by more than `reset_after_ns`.

    Args:
        max_poses: poses kept (odometry at 50 Hz: 200 is 4 s).
        tolerance_ns: a stamp outside the buffered span is answered with the nearest pose within this.
        reset_after_ns: an older stamp than the newest by more than this clears the buffer (bag loop).
    """

    def __init__(self, max_poses: int = 200, tolerance_ns: int = 100_000_000, reset_after_ns: int = 1_000_000_000):
        if max_poses < 1 or tolerance_ns < 0:
            raise ValueError(f"max_poses must be >= 1 and tolerance_ns >= 0, got {max_poses}, {tolerance_ns}")
        self.max_poses, self.tolerance_ns, self.reset_after_ns = max_poses, tolerance_ns, reset_after_ns
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
        self._lock = threading.Condition()

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._poses.clear()

    def add(self, stamp_ns: int, ego2global: np.ndarray) -> bool:
        """Store a pose; True when it went back in time and cleared the buffer first."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            cleared = bool(self._stamps) and stamp_ns < self._stamps[-1] - self.reset_after_ns
            if cleared:
                self._stamps.clear()
                self._poses.clear()
            i = bisect.bisect_left(self._stamps, stamp_ns)
            if i < len(self._stamps) and self._stamps[i] == stamp_ns:
                self._poses[i] = np.asarray(ego2global, dtype=np.float64)
            else:
                self._stamps.insert(i, stamp_ns)
                self._poses.insert(i, np.asarray(ego2global, dtype=np.float64))
            if len(self._stamps) > self.max_poses:
                del self._stamps[0], self._poses[0]
            self._lock.notify_all()
            return cleared

    def wait_for(self, stamp_ns: int, timeout_s: float) -> bool:
        """Wait (wall time) until `stamp_ns` is bracketed by poses or one lies within the tolerance after it.

        Odometry and LiDAR come on different topics, so the pose of a sweep may arrive just after it.
        False on timeout.
        """

        def ready() -> bool:
            i = bisect.bisect_left(self._stamps, stamp_ns)
            after = i < len(self._stamps) and self._stamps[i] - stamp_ns <= self.tolerance_ns
            return after or 0 < i < len(self._stamps)

        with self._lock:
            return self._lock.wait_for(ready, timeout_s)

    def lookup(self, stamp_ns: int) -> np.ndarray | None:
        """(4, 4) ego2global at `stamp_ns`, or None when no pose is close enough."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            stamps, poses = self._stamps, self._poses
            if not stamps:
                return None
            i = bisect.bisect_left(stamps, stamp_ns)
            if i < len(stamps) and stamps[i] == stamp_ns:
                return poses[i].copy()
            if 0 < i < len(stamps):
                return _interpolate(stamps[i - 1], poses[i - 1], stamps[i], poses[i], stamp_ns)
            nearest = 0 if i == 0 else len(stamps) - 1
            return poses[nearest].copy() if abs(stamps[nearest] - stamp_ns) <= self.tolerance_ns else None


def _interpolate(t0: int, pose0: np.ndarray, t1: int, pose1: np.ndarray, t: int) -> np.ndarray:
    w = (t - t0) / (t1 - t0)
    rotation = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([pose0[:3, :3], pose1[:3, :3]])))([w])
    return make_transform(rotation.as_matrix()[0], (1 - w) * pose0[:3, 3] + w * pose1[:3, 3])


class SweepBuffer:
    """The last LiDAR sweeps, (N, 4) float32 [x, y, z, intensity] each in its own LiDAR frame.

    Args:
        sweeps: previous sweeps merged into a frame (the model config's `lidar.sweeps`).
        max_age_ns: sweeps older than this before the current one are not merged.
        keep: sweeps held, so that a worker running behind the callbacks still finds its previous ones.
        reset_after_ns: a sweep older than the newest by more than this clears the buffer (bag loop).
    """

    def __init__(
        self, sweeps: int, max_age_ns: int = 1_000_000_000, keep: int = 32, reset_after_ns: int = 1_000_000_000
    ) -> None:
        if sweeps < 0 or max_age_ns < 0 or keep < sweeps + 1:
            raise ValueError(f"need sweeps >= 0, max_age_ns >= 0, keep > sweeps; got {sweeps}, {max_age_ns}, {keep}")
        self.sweeps, self.max_age_ns, self.keep, self.reset_after_ns = sweeps, max_age_ns, keep, reset_after_ns
        self._items: list[tuple[int, np.ndarray]] = []
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def add(self, stamp_ns: int, points: np.ndarray) -> None:
        """Keep a sweep: (N, 4+) float32 points in the LiDAR frame at `stamp_ns` (extra columns dropped)."""
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] < 4:
            raise ValueError(f"expected (N, 4) points [x, y, z, intensity], got {points.shape}")
        with self._lock:
            if self._items and stamp_ns < self._items[-1][0] - self.reset_after_ns:
                self._items.clear()
            bisect.insort(self._items, (int(stamp_ns), points[:, :4]), key=lambda item: item[0])
            del self._items[: max(0, len(self._items) - self.keep)]

    def previous(self, stamp_ns: int) -> list[tuple[int, np.ndarray]]:
        """Up to `sweeps` sweeps older than `stamp_ns` within `max_age_ns`, newest first."""
        with self._lock:
            older = [item for item in self._items if stamp_ns - self.max_age_ns <= item[0] < stamp_ns]
        return older[::-1][: self.sweeps]

    def accumulate(self, stamp_ns: int, points: np.ndarray, lidar2global: PoseLookup) -> np.ndarray:
        """The current sweep + previous ones in the current LiDAR frame, as (M, 5) float32 with the time lag.

        Args:
            stamp_ns: stamp of the current sweep.
            points: (N, 4) float32 current sweep, LiDAR frame.
            lidar2global: stamp -> (4, 4) LiDAR pose or None; a previous sweep whose pose (or the current
                pose) is unknown cannot be motion-compensated and is left out.

        Returns:
            (M, 5) float32 [x, y, z, intensity, time_lag_s], current sweep first (lag 0), then newest to oldest.
        """
        previous = self.previous(stamp_ns) if self.sweeps else []
        current = lidar2global(stamp_ns) if previous else None
        moves = []
        if current is not None:
            global2current = invert_transform(current)
            for stamp, sweep in previous:
                pose = lidar2global(stamp)
                if pose is not None:
                    moves.append((stamp, sweep, global2current @ pose))
        total = len(points) + sum(len(sweep) for _, sweep, _ in moves)
        out = np.empty((total, 5), dtype=np.float32)
        out[: len(points), :4] = points[:, :4]
        out[: len(points), 4] = 0.0
        start = len(points)
        for stamp, sweep, a2b in moves:
            # float32 is exact enough here: sweep points are within ~100 m of their sensor and a2b is a
            # short relative motion, so no large global coordinates enter the product.
            rows = out[start : start + len(sweep)]
            np.matmul(sweep[:, :3], a2b[:3, :3].T.astype(np.float32), out=rows[:, :3])
            rows[:, :3] += a2b[:3, 3].astype(np.float32)
            rows[:, 3] = sweep[:, 3]
            rows[:, 4] = (stamp_ns - stamp) / 1e9
            start += len(sweep)
        return out


def camera_arrays(
    names: Sequence[str],
    out_size: tuple[int, int],
    decoded: dict[str, tuple[np.ndarray, ImageTransform]],
    intrinsics: dict[str, np.ndarray],
    extrinsics: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, str]]:
    """Per-camera inputs -> the camera arrays of a Frame, in `names` order.

    Args:
        names: camera names in network order.
        out_size: (height, width) of the network images.
        decoded: camera -> ((out_h, out_w, 3) uint8 RGB, full-size -> network ImageTransform).
        intrinsics: camera -> (3, 3) intrinsics of the full-size image (CameraInfo K).
        extrinsics: camera -> (4, 4) cam2lidar.

    Returns:
        images (V, H, W, 3) uint8, cam2img (V, 3, 3) float64 at the network size, cam2lidar (V, 4, 4)
        float64, camera_valid (V,) bool, and {camera: why it was left out}.
    """
    v, (h, w) = len(names), out_size
    images = np.zeros((v, h, w, 3), dtype=np.uint8)
    cam2img = np.tile(np.eye(3), (v, 1, 1))
    cam2lidar = np.tile(np.eye(4), (v, 1, 1))
    valid = np.zeros(v, dtype=bool)
    missing: dict[str, str] = {}
    for i, name in enumerate(names):
        if name not in decoded:
            missing[name] = "no image"
        elif name not in intrinsics:
            missing[name] = "no intrinsics (CameraInfo or calibration)"
        elif name not in extrinsics:
            missing[name] = "no extrinsics (TF or calibration)"
        else:
            image, transform = decoded[name]
            if image.shape != (h, w, 3):
                raise ValueError(f"{name}: decoded image has shape {image.shape}, expected {(h, w, 3)}")
            images[i] = image
            cam2img[i] = transform.apply_to_intrinsics(intrinsics[name])
            cam2lidar[i] = extrinsics[name]
            valid[i] = True
    return images, cam2img, cam2lidar, valid, missing
