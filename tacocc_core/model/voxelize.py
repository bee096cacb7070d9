"""LiDAR points -> occupied voxels with mean point features, the input of the sparse encoder.

`voxelize` finds the occupied voxels by marking each point's voxel key in a flat table over the grid's cells
(O(points + cells), no sort); its twin `tacocc_core.reference.voxelize.voxelize_reference` does it with
`torch.unique` (a sort of the points), and the unit tests compare the two (the same tensors, bit for bit).
Grids with more than `DENSE_KEY_CELLS` cells over the batch find the keys with `torch.unique` instead.
"""

from __future__ import annotations

import torch

from tacocc_core.geometry import GridSpec

# Per-voxel input features: mean of [x, y, z, intensity, time_lag_s] over the voxel's points, the
# offset of that mean from the voxel centre (x, y, z) in voxels, and log(1 + point count).
VOXEL_FEATURES = 9
# Largest batch x grid cell count for the flat table (two int64 per cell: 256 MiB at the limit, a batch of 26
# samples of the nuScenes grid's 640,000 cells).
DENSE_KEY_CELLS = 1 << 24


def voxelize(points: torch.Tensor, points_batch: torch.Tensor, grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Group points by voxel (multi-sweep clouds keep their time lag as a feature); see `_voxelize`."""
    return _voxelize(points, points_batch, grid)


def _unique_keys(key: torch.Tensor, cells: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`torch.unique(key, sorted=True, return_inverse=True, return_counts=True)` for keys in [0, cells).

    By a flat table: the count of every cell (`bincount`), the cells that have any, each key's rank among them.
    """
    per_cell = torch.bincount(key, minlength=cells)
    uniq = per_cell.nonzero()[:, 0]
    rank = torch.empty(cells, dtype=torch.int64, device=key.device)
    rank[uniq] = torch.arange(len(uniq), device=key.device)
    return uniq, rank[key], per_cell[uniq]


def _group_by_flat_table(
    pts: torch.Tensor, points_batch: torch.Tensor, lower: torch.Tensor, size: torch.Tensor, grid_shape: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (M, VOXEL_FEATURES), voxel keys (M,) sorted) in few passes, `_unique_keys` where the grid allows.

    A point is inside when 0 <= scaled < shape on every axis, the same test as on floor(scaled) and false for
    NaN and infinities; the other columns are checked for finiteness apart. Counts come with the unique keys
    (exact integers); the feature sums by one index_add_; every pass reads the points laid out along the last
    axis, (8, P).
    """
    dev = pts.device
    nx, ny, nz = grid_shape
    # (8, P): the 5 point values and then the 3 scaled coordinates, which become the offsets from the voxel
    # centres; one value per point along each row, the layout every pass below reads and the sums need.
    columns = torch.empty(8, len(pts), dtype=torch.float32, device=dev)
    for row in range(5):  # column by column: several times faster than one transposing copy on the CPU
        columns[row] = pts[:, row]
    scaled = torch.sub(columns[:3], lower[:, None], out=columns[5:]).div_(size[:, None])
    inside = (scaled >= 0) & (scaled < torch.tensor(grid_shape, dtype=torch.float32, device=dev)[:, None])
    extra = torch.isfinite(columns[3:5])
    keep = inside[0] & inside[1] & inside[2] & extra[0] & extra[1]
    sel = keep.nonzero()[:, 0]
    if len(sel) < len(pts):
        columns, points_batch = columns.index_select(1, sel), points_batch[sel]
    scaled = columns[5:]
    corner = torch.floor(scaled)
    idx = corner.long()
    bidx = points_batch.long()
    key = ((bidx * nx + idx[0]) * ny + idx[1]) * nz + idx[2]
    cells = (int(bidx.max()) + 1 if len(bidx) else 1) * nx * ny * nz
    if cells <= DENSE_KEY_CELLS:
        uniq, inverse, count = _unique_keys(key, cells)
    else:
        uniq, inverse, count = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)
    m = len(uniq)
    count = count.float()
    scaled.sub_(corner).sub_(0.5)  # offsets from the voxel centre, in voxels: the reference's scaled - idx - 0.5
    # The 5 + 3 sums with the points along the last axis: CPU index_add_ along dim 1 adds each row's points
    # in order, as the reference's dim-0 sums do (the same floats), in a fraction of the time.
    sums = torch.zeros(8, m, device=dev).index_add_(1, inverse, columns).T
    denom = count.clamp(min=1)[:, None]
    return torch.cat([sums / denom, torch.log1p(count)[:, None]], dim=1), uniq


def _voxelize(points: torch.Tensor, points_batch: torch.Tensor, grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Group points by voxel (multi-sweep clouds keep their time lag as a feature).

    Args:
        points: (P, 5) float [x, y, z, intensity, time_lag_s], LiDAR frame.
        points_batch: (P,) int64 sample index.
        grid: the voxel grid (LiDAR frame).

    Returns:
        features: (M, VOXEL_FEATURES) float32 per occupied voxel.
        coords: (M, 4) int32 [batch, x, y, z] voxel indices, unique, sorted.
        Points outside the grid or with non-finite values are dropped; M may be 0.
    """
    if points.ndim != 2 or points.shape[1] != 5:
        raise ValueError(
            f"voxelize: expected (P, 5) points [x, y, z, intensity, time_lag_s], got {tuple(points.shape)}"
        )
    if points_batch.shape != points.shape[:1]:
        raise ValueError(
            f"voxelize: points_batch {tuple(points_batch.shape)} does not match points {tuple(points.shape)}"
        )
    dev = points.device
    pts = points.float()
    lower = torch.tensor(grid.lower, dtype=torch.float32, device=dev)
    size = torch.tensor(grid.voxel_size, dtype=torch.float32, device=dev)
    nx, ny, nz = grid.shape
    features, uniq = _group_by_flat_table(pts, points_batch, lower, size, grid.shape)
    z = uniq % nz
    y = (uniq // nz) % ny
    x = (uniq // (nz * ny)) % nx
    b = uniq // (nz * ny * nx)
    coords = torch.stack([b, x, y, z], dim=1).int()
    return features, coords
