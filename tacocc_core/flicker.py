"""Temporal consistency ("flicker"): how often the predicted label of a static voxel flips between frames.

For consecutive labelled frames t-1, t of one scene, every voxel centre of t's grid is moved into t-1's
LiDAR frame with the ego poses (lidar2global) and looked up there (nearest voxel, the one holding the
moved centre). A voxel is *static* when it lies inside both grids, neither ground truth labels it 255, and
its ground-truth label is the same in both frames (moving objects leave or enter it, so they are left out).
Counted:
- flicker: the share of static voxels whose predicted label differs between t-1 and t;
- flicker_occupied: the same over the static voxels whose ground truth is occupied (1..16), where a flip
  is a change of class or a voxel appearing / vanishing on a surface that stands still.
Free space dominates the first figure (most voxels are empty); the second isolates surfaces. A frame with
no labels, a reset (a new scene) or the first frame of a scene starts a new chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import EMPTY, IGNORE


@dataclass
class FlickerCounts:
    """Static voxels and flips, over all static voxels and over the occupied ones."""

    static: int = 0
    flipped: int = 0
    static_occupied: int = 0
    flipped_occupied: int = 0
    pairs: int = 0

    @property
    def flicker(self) -> float:
        """Share flipped / static (NaN when no static voxel was seen)."""
        return self.flipped / self.static if self.static else float("nan")

    @property
    def flicker_occupied(self) -> float:
        """Share flipped_occupied / static_occupied (NaN when none was seen)."""
        return self.flipped_occupied / self.static_occupied if self.static_occupied else float("nan")

    def add(self, other: FlickerCounts) -> None:
        self.static += other.static
        self.flipped += other.flipped
        self.static_occupied += other.static_occupied
        self.flipped_occupied += other.flipped_occupied
        self.pairs += other.pairs

    def as_array(self) -> np.ndarray:
        return np.array([self.static, self.flipped, self.static_occupied, self.flipped_occupied, self.pairs], np.int64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> FlickerCounts:
        return cls(*(int(v) for v in values))

    def to_dict(self) -> dict[str, float | int | None]:
        def clean(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "flicker": clean(self.flicker),
            "flicker_occupied": clean(self.flicker_occupied),
            "static_voxels": self.static,
            "static_occupied_voxels": self.static_occupied,
            "frame_pairs": self.pairs,
        }


def pair_flicker(
    pred_prev: np.ndarray,
    target_prev: np.ndarray,
    pred: np.ndarray,
    target: np.ndarray,
    curr2prev: np.ndarray,
    grid: GridSpec,
) -> FlickerCounts:
    """Flicker counts of one pair of consecutive frames.

    Args:
        pred_prev, target_prev: (X, Y, Z) predicted and ground-truth labels of frame t-1 (its LiDAR frame).
        pred, target: (X, Y, Z) the same for frame t.
        curr2prev: (4, 4) LiDAR frame of t -> LiDAR frame of t-1.
        grid: the grid of all four volumes.
    """
    shape = tuple(grid.shape)
    for name, volume in (("pred_prev", pred_prev), ("target_prev", target_prev), ("pred", pred), ("target", target)):
        if tuple(np.shape(volume)) != shape:
            raise ValueError(f"pair_flicker: {name} must be {shape}, got {tuple(np.shape(volume))}")
    if np.shape(curr2prev) != (4, 4):
        raise ValueError(f"pair_flicker: curr2prev must be (4, 4), got {np.shape(curr2prev)}")
    centres = grid.centers().reshape(-1, 3)
    moved = centres @ np.asarray(curr2prev, np.float64)[:3, :3].T + np.asarray(curr2prev, np.float64)[:3, 3]
    idx, inside = grid.point_to_index(moved)
    idx = np.where(inside[:, None], idx, 0)
    flat_prev = (idx[:, 0] * shape[1] + idx[:, 1]) * shape[2] + idx[:, 2]
    gt_now = np.asarray(target).reshape(-1)
    gt_then = np.asarray(target_prev).reshape(-1)[flat_prev]
    p_now = np.asarray(pred).reshape(-1)
    p_then = np.asarray(pred_prev).reshape(-1)[flat_prev]
    static = inside & (gt_now != IGNORE) & (gt_then != IGNORE) & (gt_now == gt_then)
    flipped = static & (p_now != p_then)
    occupied = static & (gt_now != EMPTY)
    return FlickerCounts(
        static=int(static.sum()),
        flipped=int(flipped.sum()),
        static_occupied=int(occupied.sum()),
        flipped_occupied=int((flipped & occupied).sum()),
        pairs=1,
    )


class FlickerMeter:
    """Accumulates flicker over streamed frames: `update` each frame in order, `reset` at a scene start."""

    def __init__(self, grid: GridSpec) -> None:
        self.grid = grid
        self.counts = FlickerCounts()
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Start a new chain (the next frame has no predecessor)."""
        self._prev = None

    def update(self, pred: np.ndarray, target: np.ndarray | None, lidar2global: np.ndarray) -> None:
        """Add frame t (labels None: not scored, and the chain restarts after it)."""
        if target is None:
            self._prev = None
            return
        pred, target = np.asarray(pred), np.asarray(target)
        pose = np.asarray(lidar2global, np.float64)
        if self._prev is not None:
            pred_prev, target_prev, pose_prev = self._prev
            curr2prev = np.linalg.inv(pose_prev) @ pose
            self.counts.add(pair_flicker(pred_prev, target_prev, pred, target, curr2prev, self.grid))
        self._prev = (pred, target, pose)
