"""Twin of `tacocc_core.model.voxelize.voxelize`: points grouped by voxel with `torch.unique` (a sort).

Same arguments and the same tensors, bit for bit: features (M, VOXEL_FEATURES) float32 and coords (M, 4)
int32 [batch, x, y, z], unique and sorted; points outside the grid or with non-finite values dropped.
"""

from __future__ import annotations

import torch

from tacocc_core.geometry import GridSpec


def voxelize_reference(
    points: torch.Tensor, points_batch: torch.Tensor, grid: GridSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, 5) [x, y, z, intensity, time_lag_s] LiDAR-frame points, (P,) int64 sample index -> features, coords."""
    dev = points.device
    pts = points.float()
    lower = torch.tensor(grid.lower, dtype=torch.float32, device=dev)
    size = torch.tensor(grid.voxel_size, dtype=torch.float32, device=dev)
    nx, ny, nz = grid.shape
    shape = torch.tensor(grid.shape, device=dev)
    finite = torch.isfinite(pts).all(dim=1)
    scaled = (torch.where(finite[:, None], pts[:, :3], torch.zeros_like(pts[:, :3])) - lower) / size
    idx = torch.floor(scaled).long()
    keep = finite & ((idx >= 0) & (idx < shape)).all(dim=1)
    pts, idx, scaled, bidx = pts[keep], idx[keep], scaled[keep], points_batch[keep].long()
    key = ((bidx * nx + idx[:, 0]) * ny + idx[:, 1]) * nz + idx[:, 2]
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    m = len(uniq)
    count = torch.zeros(m, device=dev).index_add_(0, inverse, torch.ones_like(key, dtype=torch.float32))
    sums = torch.zeros(m, 5, device=dev).index_add_(0, inverse, pts)
    offsets = torch.zeros(m, 3, device=dev).index_add_(0, inverse, scaled - idx - 0.5)
    denom = count.clamp(min=1)[:, None]
    features = torch.cat([sums / denom, offsets / denom, torch.log1p(count)[:, None]], dim=1)
    z = uniq % nz
    y = (uniq // nz) % ny
    x = (uniq // (nz * ny)) % nx
    b = uniq // (nz * ny * nx)
    return features, torch.stack([b, x, y, z], dim=1).int()
