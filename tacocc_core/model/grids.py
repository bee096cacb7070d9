"""The voxel grids the network works in: the output grid and the coarse fusion grid."""

from __future__ import annotations

from tacocc_core.config import ModelConfig
from tacocc_core.geometry import GridSpec


def coarse_grid(config: ModelConfig) -> GridSpec:
    """The fusion grid: the output grid with voxels `head.coarse_downsample` times larger (LiDAR frame)."""
    fine = config.grid.spec()
    step = config.head.coarse_downsample
    (sx, sy, sz), (nx, ny, nz) = fine.voxel_size, fine.shape
    return GridSpec(fine.lower, (sx * step, sy * step, sz * step), (nx // step, ny // step, nz // step))
