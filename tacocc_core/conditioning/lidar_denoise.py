"""Conditional filtering of LiDAR points before voxelisation (paper Fig. 1).

Filters, each optional through its parameters: non-finite coordinates; range bounds (Euclidean
distance from the LiDAR origin); height bounds (z in the LiDAR frame); the ego-vehicle box (returns
from the car's own body); statistical outlier removal (a point whose mean distance to its
`outlier_neighbours` nearest neighbours exceeds the cloud's mean of that statistic by more than
`outlier_std` standard deviations). The neighbour search of the last filter is scipy's cKDTree.
`denoise_mask` runs the tests in fewer passes over the points; its twin, one test after the other, is
`tacocc_core.reference.lidar_denoise.denoise_mask_reference` (equal mask for mask in the unit tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from tacocc_core.config import ModelConfig


@dataclass(frozen=True)
class DenoiseParams:
    """What `denoise_mask` removes.

    Args:
        min_range, max_range: kept points have min_range <= |xyz| <= max_range (metres).
        z_range: (lower, upper) kept heights in the LiDAR frame (metres).
        ego_box: (length, width, height) of a box centred on the LiDAR origin; points inside are dropped.
            (0, 0, 0) keeps them.
        ego_forward_axis: "x" or "y", the LiDAR axis along which `length` runs.
        outlier_neighbours: neighbours of the statistical outlier test; 0 disables it.
        outlier_std: standard deviations above the mean neighbour distance beyond which a point is dropped.
    """

    min_range: float = 1.0
    max_range: float = 80.0
    z_range: tuple[float, float] = (-5.0, 3.0)
    ego_box: tuple[float, float, float] = (4.2, 2.0, 2.0)
    ego_forward_axis: str = "y"
    outlier_neighbours: int = 0
    outlier_std: float = 3.0

    @classmethod
    def from_config(cls, config: ModelConfig) -> DenoiseParams:
        """The LiDAR section's filters, with the output grid's z range as the height bounds."""
        lidar = config.lidar
        return cls(
            min_range=lidar.min_range,
            max_range=lidar.max_range,
            z_range=config.grid.z_range,
            ego_box=lidar.ego_box,
            ego_forward_axis=lidar.ego_forward_axis,
            outlier_neighbours=lidar.outlier_neighbours,
            outlier_std=lidar.outlier_std,
        )


def denoise_mask(points: torch.Tensor, params: DenoiseParams, points_batch: torch.Tensor | None = None) -> torch.Tensor:
    """Which points survive the filters, in few passes over the points.

    A non-finite coordinate makes the point's distance NaN or infinite, and NaN fails every comparison, so
    finite range and height bounds reject such points by themselves: the separate finiteness test and the
    zeroing of those rows are left out (with an infinite or NaN bound the finiteness test runs).

    Args:
        points: (N, 3+) float, LiDAR frame, metres (x, y, z first).
        params: the filters.
        points_batch: (N,) int64 frame index of each point; the outlier statistics are per frame.

    Returns:
        (N,) bool on the points' device, True for kept points.
    """
    _check(points, params)
    bounds = (params.min_range, params.max_range, *params.z_range)
    xyz = points[:, :3].float().contiguous()  # contiguous, as the reference's norm input: the same distances
    dist = xyz.norm(dim=1)
    z = xyz[:, 2]
    keep = (dist >= params.min_range) & (dist <= params.max_range) & (z >= params.z_range[0]) & (z <= params.z_range[1])
    if not all(math.isfinite(b) for b in bounds):  # an infinite bound lets non-finite rows through
        keep &= torch.isfinite(xyz).all(dim=1)
    half = _ego_half_sizes(params)
    if half is not None:
        size = xyz.abs()
        keep &= ~((size[:, 0] <= half[0]) & (size[:, 1] <= half[1]) & (size[:, 2] <= half[2]))
    if params.outlier_neighbours > 0:
        keep &= _statistical_inliers(xyz, keep, params.outlier_neighbours, params.outlier_std, points_batch)
    return keep


def _check(points: torch.Tensor, params: DenoiseParams) -> None:
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"denoise_mask: expected (N, 3+) points, got {tuple(points.shape)}")
    if params.ego_forward_axis not in ("x", "y"):
        raise ValueError(f"denoise_mask: ego_forward_axis must be 'x' or 'y', got {params.ego_forward_axis!r}")


def _ego_half_sizes(params: DenoiseParams) -> tuple[float, float, float] | None:
    """Half sizes of the ego box along LiDAR x, y, z, or None when the box is switched off."""
    length, width, height = params.ego_box
    if not (length > 0 and width > 0 and height > 0):
        return None
    if params.ego_forward_axis == "x":
        return length / 2, width / 2, height / 2
    return width / 2, length / 2, height / 2


def _statistical_inliers(
    xyz: torch.Tensor, candidate: torch.Tensor, neighbours: int, std: float, points_batch: torch.Tensor | None
) -> torch.Tensor:
    """(N,) bool: True unless a candidate point is a statistical outlier within its frame."""
    out = torch.ones_like(candidate)
    frames = torch.zeros_like(candidate, dtype=torch.int64) if points_batch is None else points_batch
    xyz_np = xyz.detach().cpu().numpy().astype(np.float64)
    cand_np = candidate.cpu().numpy()
    frames_np = frames.cpu().numpy()
    for frame in np.unique(frames_np[cand_np]):
        idx = np.flatnonzero(cand_np & (frames_np == frame))
        if len(idx) <= neighbours:
            continue
        dist, _ = cKDTree(xyz_np[idx]).query(xyz_np[idx], k=neighbours + 1)  # column 0 is the point itself
        mean_dist = dist[:, 1:].mean(axis=1)
        limit = mean_dist.mean() + std * mean_dist.std()
        out[torch.from_numpy(idx[mean_dist > limit]).to(out.device)] = False
    return out


def denoise_points(
    points: torch.Tensor, points_batch: torch.Tensor, params: DenoiseParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept points and their frame indices: `(points[keep], points_batch[keep])`."""
    kept = denoise_mask(points, params, points_batch).nonzero().squeeze(1)
    return points.index_select(0, kept), points_batch.index_select(0, kept)
