"""LiDAR branch: voxelised points -> spconv sparse 3D encoder -> F_L, a dense volume on the coarse grid.

Stages follow `LidarConfig.encoder_channels`: the first is a submanifold conv at the output grid's
resolution; each later stage starts with a stride-2 `SparseConv3d` while the volume is still finer
than the coarse grid, then a `SubMConv3d`. Every conv has bias=False and is followed by BatchNorm1d
and ReLU (see spconv_compat for why). The sparse result is scattered to a dense (B, C, X, Y, Z)
volume aligned with the image volume; voxels with no LiDAR support stay exactly zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tacocc_core.config import ModelConfig
from tacocc_core.model.grids import coarse_grid
from tacocc_core.model.spconv_compat import import_spconv
from tacocc_core.model.voxelize import VOXEL_FEATURES, voxelize

spconv = import_spconv()


def _block(conv: nn.Module, channels: int) -> nn.Module:
    return spconv.SparseSequential(conv, nn.BatchNorm1d(channels), nn.ReLU(inplace=True))


class LidarEncoder(nn.Module):
    """LiDAR points -> F_L on the coarse grid.

    forward(points (P, 5) LiDAR frame, points_batch (P,) int64, batch_size) ->
    (volume (B, C_L, X, Y, Z) float, occupied (B, X, Y, Z) bool: the active sparse sites).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fine_grid = config.grid.spec()
        self.coarse_shape = coarse_grid(config).shape
        channels = config.lidar.encoder_channels
        downsamples = round(math.log2(config.head.coarse_downsample))
        if 2**downsamples != config.head.coarse_downsample:
            raise ValueError(f"head.coarse_downsample must be a power of 2, got {config.head.coarse_downsample}")
        if len(channels) - 1 < downsamples:
            raise ValueError(
                f"lidar.encoder_channels {channels} has {len(channels)} stages; reaching the coarse grid "
                f"(head.coarse_downsample={config.head.coarse_downsample}) needs at least {downsamples + 1}"
            )
        self.out_channels = channels[-1]
        layers = [
            _block(
                spconv.SubMConv3d(VOXEL_FEATURES, channels[0], 3, padding=1, bias=False, indice_key="s0"), channels[0]
            )
        ]
        level = 0
        for cin, cout in zip(channels[:-1], channels[1:], strict=True):
            if level < downsamples:
                layers.append(_block(spconv.SparseConv3d(cin, cout, 3, stride=2, padding=1, bias=False), cout))
                level += 1
                cin = cout
            layers.append(_block(spconv.SubMConv3d(cin, cout, 3, padding=1, bias=False, indice_key=f"s{level}"), cout))
        self.net = spconv.SparseSequential(*layers)

    def forward(
        self, points: torch.Tensor, points_batch: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features, coords = voxelize(points, points_batch, self.fine_grid)
        x, y, z = self.coarse_shape
        occupied = torch.zeros(batch_size, x, y, z, dtype=torch.bool, device=points.device)
        if len(coords) == 0:
            return torch.zeros(batch_size, self.out_channels, x, y, z, device=points.device), occupied
        sparse = spconv.SparseConvTensor(features, coords, list(self.fine_grid.shape), batch_size)
        out = self.net(sparse)
        dense = torch.zeros(batch_size, x, y, z, self.out_channels, dtype=out.features.dtype, device=points.device)
        idx = out.indices.long()
        dense[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]] = out.features
        occupied[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]] = True
        return dense.permute(0, 4, 1, 2, 3).contiguous(), occupied
