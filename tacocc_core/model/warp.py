"""Warp a voxel volume from the previous LiDAR frame into the current one by the ego motion.

A static world then stays where it is in the warped volume while the vehicle moves. Each voxel centre
p of the current grid is mapped into the previous LiDAR frame, `cur2prev @ p`, and the previous
volume is sampled there trilinearly (`torch.nn.functional.grid_sample`); places the previous grid did
not see read zeros.

Layout: volumes are (B, C, X, Y, Z) with X along the LiDAR x axis, so grid_sample's (D, H, W) are
(X, Y, Z) and its normalised sampling coordinates come in the order (z, y, x). With
`align_corners=False` normalised -1 / +1 are the outer faces of the first / last voxel, which is the
GridSpec convention `centre = lower + (index + 0.5) * size`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tacocc_core.geometry import GridSpec

# Swaps metric (x, y, z) and grid_sample's (z, y, x) order; its own inverse.
_SWAP_XZ = torch.tensor(
    [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64
)


def scaled_grid(spec: GridSpec, factor: int) -> GridSpec:
    """The same extent as `spec` with voxels `factor` times larger per axis (a coarse grid)."""
    if factor < 1 or any(n % factor for n in spec.shape):
        raise ValueError(f"grid shape {spec.shape} is not divisible by factor {factor}")
    (sx, sy, sz), (nx, ny, nz) = spec.voxel_size, spec.shape
    return GridSpec(spec.lower, (sx * factor, sy * factor, sz * factor), (nx // factor, ny // factor, nz // factor))


def relative_pose(prev_lidar2global: torch.Tensor, cur_lidar2global: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) float64 lidar2global of two frames -> (..., 4, 4) float64 `prev2cur` = inv(cur) @ prev."""
    prev = torch.as_tensor(prev_lidar2global, dtype=torch.float64)
    cur = torch.as_tensor(cur_lidar2global, dtype=torch.float64)
    return torch.linalg.inv(cur) @ prev


def _normalised_to_metric(spec: GridSpec) -> torch.Tensor:
    """(4, 4) float64 map from grid_sample's normalised (z, y, x, 1) to metric (x, y, z, 1)."""
    lower = torch.tensor(spec.lower, dtype=torch.float64)
    extent = torch.tensor(spec.voxel_size, dtype=torch.float64) * torch.tensor(spec.shape, dtype=torch.float64)
    scale = torch.eye(4, dtype=torch.float64)
    scale[:3, :3] = torch.diag(extent / 2)
    scale[:3, 3] = lower + extent / 2
    return scale @ _SWAP_XZ


def warp_theta(prev2cur: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """(B, 4, 4) float64 prev2cur -> (B, 3, 4) float64 `affine_grid` theta (current -> previous, normalised)."""
    to_metric = _normalised_to_metric(spec).to(prev2cur.device)
    cur2prev = torch.linalg.inv(prev2cur)
    return (torch.linalg.inv(to_metric) @ cur2prev @ to_metric)[:, :3, :]


def warp_volume(volume: torch.Tensor, prev2cur: torch.Tensor | np.ndarray, spec: GridSpec) -> torch.Tensor:
    """Resample a volume given in the previous LiDAR frame onto the current frame's grid.

    Args:
        volume: (B, C, X, Y, Z) features on `spec`, previous LiDAR frame.
        prev2cur: (B, 4, 4) or (4, 4) rigid transform previous LiDAR frame -> current LiDAR frame.
        spec: the grid of `volume` (metres, LiDAR frame); the output uses the same grid.

    Returns:
        (B, C, X, Y, Z) same dtype, current LiDAR frame; zeros where the previous grid has no data.
    """
    if volume.dim() != 5:
        raise ValueError(f"warp_volume: expected a (B, C, X, Y, Z) volume, got shape {tuple(volume.shape)}")
    if tuple(volume.shape[2:]) != tuple(spec.shape):
        raise ValueError(f"warp_volume: volume grid {tuple(volume.shape[2:])} differs from the spec {spec.shape}")
    pose = torch.as_tensor(prev2cur, dtype=torch.float64, device=volume.device)
    if pose.shape == (4, 4):
        pose = pose.expand(volume.shape[0], 4, 4)
    if pose.shape != (volume.shape[0], 4, 4):
        raise ValueError(
            f"warp_volume: expected prev2cur of shape (4, 4) or ({volume.shape[0]}, 4, 4), got {tuple(pose.shape)}"
        )
    if not torch.isfinite(pose).all():
        raise ValueError("warp_volume: prev2cur holds non-finite values")
    theta = warp_theta(pose, spec)
    # grid_sample needs the grid in the volume's float type; float32 keeps sub-voxel accuracy under bf16.
    sample_dtype = torch.float32 if volume.dtype in (torch.float16, torch.bfloat16) else volume.dtype
    grid = F.affine_grid(theta.to(sample_dtype), list(volume.shape), align_corners=False)
    out = F.grid_sample(volume.to(sample_dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(volume.dtype)
