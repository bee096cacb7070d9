"""Voxel motion between adjacent LiDAR frames, for the velocity gate of paper Eq. 4.

The previous sweep is moved into the current LiDAR frame with the ego motion (so the ego vehicle's own
motion cancels); in every voxel occupied in both sweeps, the displacement is the centroid of the current
points minus the centroid of the compensated previous points. Static structure then has a displacement
near zero and moving objects one along their motion. An object that moves farther than a voxel per frame
leaves its old voxel: that motion shows up only where old and new extents overlap, so coarse voxels
(the fusion grid, not the 0.5 m output grid) suit this best.

Why our own: nuscenes-devkit, rosbags and scipy offer no per-voxel scene flow, and a full registration
library (ICP per object) would be far more than the gate needs.
"""

from __future__ import annotations

import torch

from tacocc_core.geometry import GridSpec


def voxel_keys(points: torch.Tensor, grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, 3+) metric points -> ((P,) int64 flat voxel index, (P,) bool inside the grid)."""
    lower = torch.tensor(grid.lower, dtype=points.dtype, device=points.device)
    size = torch.tensor(grid.voxel_size, dtype=points.dtype, device=points.device)
    shape = torch.tensor(grid.shape, device=points.device)
    idx = torch.floor((points[:, :3] - lower) / size).long()
    inside = torch.isfinite(points[:, :3]).all(dim=1) & ((idx >= 0) & (idx < shape)).all(dim=1)
    idx = torch.where(inside[:, None], idx, torch.zeros_like(idx))
    flat = (idx[:, 0] * grid.shape[1] + idx[:, 1]) * grid.shape[2] + idx[:, 2]
    return flat, inside


def voxel_displacement(
    prev_points: torch.Tensor, curr_points: torch.Tensor, prev2curr: torch.Tensor, grid: GridSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-voxel centroid displacement between two ego-compensated LiDAR sweeps.

    Args:
        prev_points: (P, 3+) previous sweep, its own LiDAR frame (extra columns ignored).
        curr_points: (Q, 3+) current sweep, current LiDAR frame.
        prev2curr: (4, 4) previous LiDAR frame -> current LiDAR frame (ego motion).
        grid: voxels in the current LiDAR frame.

    Returns:
        index: (M, 3) int64 voxel indices occupied in both sweeps; displacement: (M, 3) metres, current frame.
    """
    for name, pts in (("prev_points", prev_points), ("curr_points", curr_points)):
        if pts.ndim != 2 or pts.shape[1] < 3:
            raise ValueError(f"voxel_displacement: {name} must be (N, 3+), got {tuple(pts.shape)}")
    if tuple(prev2curr.shape) != (4, 4):
        raise ValueError(f"voxel_displacement: prev2curr must be (4, 4), got {tuple(prev2curr.shape)}")
    dtype = torch.float64
    prev = prev_points[:, :3].to(dtype) @ prev2curr[:3, :3].to(dtype).T + prev2curr[:3, 3].to(dtype)
    curr = curr_points[:, :3].to(dtype)
    n_vox = grid.shape[0] * grid.shape[1] * grid.shape[2]
    centroids, counts = [], []
    for pts in (prev, curr):
        key, inside = voxel_keys(pts, grid)
        key, pts = key[inside], pts[inside]
        total = torch.zeros(n_vox, 3, dtype=dtype, device=pts.device).index_add_(0, key, pts)
        count = torch.bincount(key, minlength=n_vox)
        centroids.append(total / count.clamp_min(1)[:, None])
        counts.append(count)
    both = ((counts[0] > 0) & (counts[1] > 0)).nonzero(as_tuple=True)[0]
    nz = grid.shape[2]
    index = torch.stack([both // (grid.shape[1] * nz), (both // nz) % grid.shape[1], both % nz], dim=1)
    displacement = (centroids[1][both] - centroids[0][both]).to(prev_points.dtype)
    return index, displacement


def sample_displacement(
    means: torch.Tensor, index: torch.Tensor, displacement: torch.Tensor, grid: GridSpec
) -> torch.Tensor:
    """(N,) displacement norm (metres) of the voxel holding each Gaussian centre; 0 where none is known.

    Args:
        means: (N, 3) Gaussian centres, current LiDAR frame.
        index: (M, 3) int64 voxel indices (from `voxel_displacement`).
        displacement: (M, 3) metres (from `voxel_displacement`).
        grid: the grid of `index`.
    """
    n_vox = grid.shape[0] * grid.shape[1] * grid.shape[2]
    dense = torch.zeros(n_vox, dtype=means.dtype, device=means.device)
    flat = (index[:, 0] * grid.shape[1] + index[:, 1]) * grid.shape[2] + index[:, 2]
    dense[flat] = displacement.norm(dim=1).to(means.dtype)
    key, inside = voxel_keys(means.detach(), grid)
    return torch.where(inside, dense[key], torch.zeros_like(dense[key]))
