"""Occupancy labels from the grid of a label file onto the grid of a model config.

Rule (block vote): when the target grid is the source grid cropped and coarsened by a whole factor per
axis (SurroundOcc 200x200x16 at 0.5 m -> the tiny preset's 48x48x8 at 1 m), a coarse voxel takes the
most frequent semantic class (1..16) among its fine voxels, ties to the lower class id; with no
semantic fine voxel it is empty (0) if any fine voxel is empty, else ignore (255). Otherwise (other
frames or sizes) each target voxel takes the source voxel under its centre (nearest), 255 outside.
"""

from __future__ import annotations

import numpy as np

from tacocc_core.geometry import GridSpec, transform_points
from tacocc_core.labels import EMPTY, IGNORE, NUM_CLASSES


def block_factor(src: GridSpec, dst: GridSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """(3,) int factor and (3,) int source offset when dst is an aligned whole-factor coarsening of src."""
    ratio = np.asarray(dst.voxel_size) / np.asarray(src.voxel_size)
    offset = (np.asarray(dst.lower) - np.asarray(src.lower)) / np.asarray(src.voxel_size)
    factor = np.round(ratio).astype(int)
    start = np.round(offset).astype(int)
    if not (np.allclose(ratio, factor) and np.all(factor >= 1) and np.allclose(offset, start)):
        return None
    if np.any(start < 0) or np.any(start + factor * np.asarray(dst.shape) > np.asarray(src.shape)):
        return None
    return factor, start


def block_vote(labels: np.ndarray, src: GridSpec, dst: GridSpec) -> np.ndarray:
    """(src.shape) uint8 -> (dst.shape) uint8 by the block-vote rule of this module."""
    fs = block_factor(src, dst)
    if fs is None:
        raise ValueError(f"block_vote: grid {dst} is not an aligned whole-factor coarsening of {src}")
    (fx, fy, fz), (sx, sy, sz) = fs
    nx, ny, nz = dst.shape
    crop = labels[sx : sx + fx * nx, sy : sy + fy * ny, sz : sz + fz * nz]
    blocks = crop.reshape(nx, fx, ny, fy, nz, fz).transpose(0, 2, 4, 1, 3, 5).reshape(nx, ny, nz, -1)
    counts = np.stack([(blocks == c).sum(-1) for c in range(1, NUM_CLASSES)], axis=-1)
    out = np.where((blocks == EMPTY).any(-1), EMPTY, IGNORE).astype(np.uint8)
    semantic = counts.max(-1) > 0
    out[semantic] = (counts.argmax(-1) + 1)[semantic]
    return out


def nearest(labels: np.ndarray, src: GridSpec, dst: GridSpec, dst2src: np.ndarray | None = None) -> np.ndarray:
    """Each dst voxel takes the src voxel under its centre (after dst2src, (4, 4)); 255 outside src."""
    centers = dst.centers().reshape(-1, 3)
    if dst2src is not None:
        centers = transform_points(dst2src, centers)
    idx, inside = src.point_to_index(centers)
    out = np.full(len(centers), IGNORE, dtype=np.uint8)
    out[inside] = labels[idx[inside, 0], idx[inside, 1], idx[inside, 2]]
    return out.reshape(dst.shape)


def resample_labels(labels: np.ndarray, src: GridSpec, dst: GridSpec, dst2src: np.ndarray | None = None) -> np.ndarray:
    """Labels on `src` -> labels on `dst`: unchanged, block vote, or nearest (see the module docstring)."""
    if labels.shape != src.shape:
        raise ValueError(f"resample_labels: labels have shape {labels.shape}, the source grid is {src.shape}")
    same_frame = dst2src is None or np.allclose(dst2src, np.eye(4))
    if same_frame and src == dst:
        return labels
    if same_frame and block_factor(src, dst) is not None:
        return block_vote(labels, src, dst)
    return nearest(labels, src, dst, None if same_frame else dst2src)
