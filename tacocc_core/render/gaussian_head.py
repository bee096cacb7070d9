"""The light conv net that predicts each Gaussian's initial parameters Theta^0 from F~_IL (paper Sec. III-B).

    F~_IL (C_h, X, Y, Z) --Conv3d 3x3x3 + GroupNorm + SiLU--> (C, X, Y, Z)
        --trilinear sample at each anchor--> (N, C) ++ source one-hot (LiDAR / voxel)
        --Linear + SiLU + Linear--> raw (N, 11 + 3K + 2) --bounded activations--> Theta^0

Activations (every output is a valid Gaussian; Theta is the free parameterisation of `free_params`):
    means       = anchor + b * tanh(raw), b = lidar_offset_max for LiDAR anchors, voxel_offset_max otherwise
    quats       = normalise(raw + (1, 0, 0, 0))          identity rotation at raw = 0
    scales      = s_min + (s_max - s_min) * sigmoid(raw + b_s), s_min = 0.01 m, s_max = coarse voxel edge e,
                  b_s such that raw = 0 gives e / 4 (+-2 standard deviations span the voxel)
    opacities   = sigmoid(raw + logit(0.1))              0.1 at raw = 0, the usual 3DGS start
    sh          = raw                                    grey (0.5) at raw = 0
    mu_t        = time_scale * tanh(raw)                 within one frame interval of the frame's own time
    sigma_t     = time_scale * (0.05 + softplus(raw + 0.5))   about one frame interval at raw = 0
time_scale is the frame interval in seconds (what the caller measures from the stamps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tacocc_core.geometry import GridSpec
from tacocc_core.render.anchors import sample_volume
from tacocc_core.render.free_params import FreeParams
from tacocc_core.render.gaussians import sh_coefficients

SCALE_MIN = 0.01  # metres
SCALE_INIT_FRACTION = 0.25  # of the coarse voxel edge
OPACITY_INIT = 0.1
SIGMA_T_FLOOR = 0.05  # fraction of the frame interval
SIGMA_T_BIAS = 0.5


class GaussianHead(nn.Module):
    """Per-anchor Gaussian parameters from the smoothed feature volume.

    Args:
        in_channels: C_h of F~_IL (config.temporal.hidden_channels).
        channels: hidden channels (config.renderer.head_channels).
        grid: the coarse grid F~_IL lives on (LiDAR frame).
        sh_degree: SH degree of the colours (config.renderer.sh_degree).
        lidar_offset_max: offset bound of LiDAR anchors, metres per axis.
        voxel_offset_max: offset bound of voxel anchors, metres per axis.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        grid: GridSpec,
        sh_degree: int,
        lidar_offset_max: float,
        voxel_offset_max: float,
    ) -> None:
        super().__init__()
        if not (lidar_offset_max > 0 and voxel_offset_max > 0):
            raise ValueError(f"GaussianHead: offset bounds must be > 0, got {lidar_offset_max}, {voxel_offset_max}")
        self.grid = grid
        self.in_channels = in_channels
        self.sh_k = sh_coefficients(sh_degree)
        self.lidar_offset_max = lidar_offset_max
        self.voxel_offset_max = voxel_offset_max
        self.scale_max = float(max(grid.voxel_size))
        if SCALE_INIT_FRACTION * self.scale_max <= SCALE_MIN:
            raise ValueError(
                f"GaussianHead: coarse voxels of {self.scale_max} m are too small for Gaussians of >= {SCALE_MIN} m"
            )
        start = (SCALE_INIT_FRACTION * self.scale_max - SCALE_MIN) / (self.scale_max - SCALE_MIN)
        self.scale_bias = math.log(start / (1.0 - start))
        self.conv = nn.Sequential(
            nn.Conv3d(in_channels, channels, 3, padding=1, bias=False),
            nn.GroupNorm(math.gcd(channels, 8), channels),
            nn.SiLU(),
        )
        last = nn.Linear(channels, self.raw_dim)
        self.mlp = nn.Sequential(nn.Linear(channels + 2, channels), nn.SiLU(), last)
        nn.init.normal_(last.weight, std=1e-2)  # start near the documented raw = 0 values
        nn.init.zeros_(last.bias)

    @property
    def raw_dim(self) -> int:
        return 3 + 4 + 3 + 1 + 3 * self.sh_k + 2

    def forward(
        self, features: torch.Tensor, anchors: torch.Tensor, is_lidar: torch.Tensor, time_scale: float
    ) -> FreeParams:
        """Theta^0 of N Gaussians.

        Args:
            features: (C_h, X, Y, Z) F~_IL of one frame on `grid`.
            anchors: (N, 3) anchor centres, metres, LiDAR frame.
            is_lidar: (N,) bool, True for LiDAR anchors.
            time_scale: frame interval, seconds (> 0).

        Returns:
            Theta^0 (see `free_params`), differentiable in `features` and the net's weights.
        """
        if features.ndim != 4 or features.shape[0] != self.in_channels:
            raise ValueError(
                f"GaussianHead: features must be ({self.in_channels}, X, Y, Z), got {tuple(features.shape)}"
            )
        if anchors.ndim != 2 or anchors.shape[1] != 3 or tuple(is_lidar.shape) != (anchors.shape[0],):
            raise ValueError(
                f"GaussianHead: need (N, 3) anchors and (N,) is_lidar, got {tuple(anchors.shape)} and "
                f"{tuple(is_lidar.shape)}"
            )
        if not time_scale > 0:
            raise ValueError(f"GaussianHead: time_scale (frame interval) must be > 0 seconds, got {time_scale}")
        hidden = self.conv(features[None])[0]
        anchors = anchors.to(hidden.dtype)
        sampled = sample_volume(hidden, anchors, self.grid)  # (N, C)
        source = F.one_hot(is_lidar.long(), 2).to(hidden.dtype)
        raw = self.mlp(torch.cat([sampled, source], dim=1))
        n = anchors.shape[0]
        off, quat, scale, opac, rest = raw.split([3, 4, 3, 1, raw.shape[1] - 11], dim=1)
        sh, mu, sigma = rest.split([3 * self.sh_k, 1, 1], dim=1)
        bound = torch.where(is_lidar, self.lidar_offset_max, self.voxel_offset_max).to(raw.dtype)
        identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=raw.dtype, device=raw.device)
        scales = SCALE_MIN + (self.scale_max - SCALE_MIN) * torch.sigmoid(scale + self.scale_bias)
        sigma_t = time_scale * (SIGMA_T_FLOOR + F.softplus(sigma[:, 0] + SIGMA_T_BIAS))
        return {
            "means": anchors + bound[:, None] * torch.tanh(off),
            "quats": F.normalize(quat + identity, dim=-1),
            "log_scales": scales.log(),
            "logit_opacities": opac[:, 0] + math.log(OPACITY_INIT / (1.0 - OPACITY_INIT)),
            "sh": sh.reshape(n, self.sh_k, 3),
            "mu_t": time_scale * torch.tanh(mu[:, 0]),
            "log_sigma_t": sigma_t.log(),
        }
