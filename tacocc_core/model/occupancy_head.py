"""Cascaded occupancy head (coarse-to-fine, as the cascade of OpenOccupancy's CONet and Co-Occ).

Coarse stage, at the fusion resolution: two 3x3x3 conv + GroupNorm + ReLU blocks, then a 1x1x1 conv
to 17 class logits.

Fine stage, `cascade_ratio` r times finer per axis: the coarse logits are upsampled trilinearly to
the fine grid, and only the children of coarse voxels that the coarse stage calls occupied
(argmax != empty) are refined. For each such fine voxel the coarse features are sampled trilinearly at
its centre, a learned embedding of its position inside the parent (one of r^3) is added, and a
two-layer MLP predicts a correction added to its upsampled logits. During training at most
`fine_topk_train` coarse voxels per frame are refined, those with the highest occupancy score
1 - p(empty), which bounds the fine stage's memory; at inference every occupied coarse voxel is.
Voxels not refined keep the upsampled coarse logits.

Two implementations of the fine stage compute the same function. `_refine` (training, and the reference)
gathers the refined children and samples the features at each of them. `_refine_dense` (inference) uses
that trilinear sampling is linear: the MLP's first layer is applied once per coarse voxel, the result is
upsampled trilinearly to the fine grid (`F.interpolate` with align_corners=False samples at the same
fine voxel centres, clamped at the border, as `grid_sample` with border padding does), the child
embedding enters as one bias per child position, and the second layer is one matrix product over the
fine grid; the correction is kept at the children of refined voxels only. It trades the gathers for
dense arithmetic, which wins when a fair share of the coarse voxels are refined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from tacocc_core.config import ModelConfig
from tacocc_core.labels import EMPTY, NUM_CLASSES


@dataclass(frozen=True)
class HeadOutput:
    """Output of the cascaded head.

    Args:
        coarse_logits: (B, 17, Xc, Yc, Zc) at the fusion resolution.
        fine_logits: (B, 17, X, Y, Z) with X = r Xc (the output grid).
        refined: (B, Xc, Yc, Zc) bool, the coarse voxels whose children the fine stage refined.
    """

    coarse_logits: torch.Tensor
    fine_logits: torch.Tensor
    refined: torch.Tensor


def select_refined(coarse_logits: torch.Tensor, topk: int | None) -> torch.Tensor:
    """(B, 17, Xc, Yc, Zc) logits -> (B, Xc, Yc, Zc) bool: coarse voxels called occupied (argmax != empty).

    With `topk`, at most that many per frame are kept, those with the highest 1 - p(empty).
    """
    occupied = coarse_logits.argmax(dim=1) != EMPTY
    if topk is None:
        return occupied
    flat = occupied.flatten(1)
    if int(flat.sum(dim=1).max()) <= topk:  # host sync: decides whether ranking is needed at all
        return occupied
    score = 1.0 - torch.softmax(coarse_logits.float(), dim=1)[:, EMPTY].flatten(1)
    score = torch.where(flat, score, torch.full_like(score, -1.0))
    keep = torch.zeros_like(flat)
    keep.scatter_(1, score.topk(topk, dim=1).indices, True)
    return (keep & flat).view_as(occupied)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(_groups(c_out), c_out), nn.ReLU(inplace=True)
    )


class CascadedOccupancyHead(nn.Module):
    """Coarse head + fine refinement of coarse-occupied voxels.

    Args:
        in_channels: channels of the input volume (the temporal aggregator's output).
        channels: hidden channels of both stages.
        cascade_ratio: r, fine voxels per coarse voxel along each axis.
        fine_topk_train: at most this many coarse voxels refined per frame in training mode.
        num_classes: output classes (17: empty + 16).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        cascade_ratio: int,
        fine_topk_train: int,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.ratio = cascade_ratio
        self.fine_topk_train = fine_topk_train
        self.coarse = nn.Sequential(_conv_block(in_channels, channels), _conv_block(channels, channels))
        self.coarse_classifier = nn.Conv3d(channels, num_classes, 1)
        self.child_embedding = nn.Embedding(cascade_ratio**3, channels)
        self.in_channels = in_channels
        last = nn.Linear(channels, num_classes)
        self.fine_mlp = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True), last)
        nn.init.zeros_(last.weight)  # the fine stage starts as the upsampled coarse stage
        nn.init.zeros_(last.bias)

    @classmethod
    def from_config(cls, config: ModelConfig, in_channels: int) -> CascadedOccupancyHead:
        """A head whose fine grid is the config's output grid; `in_channels` from the temporal aggregator."""
        grid, head = config.grid.spec().shape, config.head
        if head.cascade_ratio != head.coarse_downsample:
            raise ValueError(
                f"head.cascade_ratio={head.cascade_ratio} must equal head.coarse_downsample="
                f"{head.coarse_downsample} so that the fine stage produces the output grid {grid}"
            )
        return cls(in_channels, head.channels, head.cascade_ratio, head.fine_topk_train)

    def forward(self, volume: torch.Tensor) -> HeadOutput:
        """volume: (B, C_in, Xc, Yc, Zc), LiDAR frame -> HeadOutput with the fine grid r times finer."""
        if volume.dim() != 5 or volume.shape[1] != self.in_channels:
            raise ValueError(
                f"CascadedOccupancyHead: expected (B, {self.in_channels}, X, Y, Z) input, got {tuple(volume.shape)}"
            )
        features = self.coarse(volume)
        coarse_logits = self.coarse_classifier(features)
        refined = select_refined(coarse_logits.detach(), self.fine_topk_train if self.training else None)
        # At inference the upsampling reads channels-last memory, where the CPU kernel vectorises over the
        # channels (the same numbers in bf16, within 1e-6 in float32): see test_occupancy_head.
        logits = coarse_logits if self.training else coarse_logits.contiguous(memory_format=torch.channels_last_3d)
        up = F.interpolate(logits, scale_factor=self.ratio, mode="trilinear", align_corners=False)
        refine = self._refine if self.training else self._refine_dense
        return HeadOutput(coarse_logits, refine(features, up, refined), refined)

    def _refine_dense(self, features: torch.Tensor, up: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
        """`_refine` over the dense fine grid: first layer at the coarse grid, then upsample (see the module doc).

        features: (B, C, Xc, Yc, Zc); up: (B, 17, X, Y, Z) upsampled coarse logits; refined: (B, Xc, Yc, Zc) bool.
        The hidden volume is kept channels-last, (B, X, Y, Z, C) in memory, where the upsampling and the
        matrix products vectorise over the channels.
        """
        r = self.ratio
        b, _, xc, yc, zc = features.shape
        first, second = cast(nn.Linear, self.fine_mlp[0]), cast(nn.Linear, self.fine_mlp[2])
        dtype = features.dtype
        projected = torch.matmul(features.permute(0, 2, 3, 4, 1), first.weight.t().to(dtype))  # (B, Xc, Yc, Zc, C)
        hidden = F.interpolate(projected.permute(0, 4, 1, 2, 3), scale_factor=r, mode="trilinear", align_corners=False)
        hidden = hidden.permute(0, 2, 3, 4, 1)  # (B, X, Y, Z, C), contiguous: the channels-last input stays so
        channels = hidden.shape[-1]
        # one bias per child position (cx, cy, cz), numbered as in `_refine`: W1 e_child + b1
        child_bias = torch.addmm(first.bias, self.child_embedding.weight, first.weight.t()).to(hidden.dtype)
        hidden = hidden.reshape(b, xc, r, yc, r, zc, r, channels)  # fine x = xc r + cx, and so on
        hidden = hidden.add_(child_bias.view(r, 1, r, 1, r, channels)).relu_().view(b, -1, channels)
        weight, bias = second.weight.to(hidden.dtype), second.bias.to(hidden.dtype)
        delta = hidden.new_empty(b, weight.shape[0], hidden.shape[1])  # (B, 17, X Y Z)
        for i in range(b):
            torch.addmm(bias[:, None], weight, hidden[i].t(), out=delta[i])
        children = refined[:, None, :, None, :, None, :, None].expand(b, 1, xc, r, yc, r, zc, r)
        delta = delta.view_as(up).mul_(children.reshape(b, 1, *up.shape[2:]))
        return delta.add_(up) if delta.dtype == up.dtype else up + delta.to(up.dtype)

    def _refine(self, features: torch.Tensor, up: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
        """Add the MLP correction at the children of `refined` coarse voxels; other voxels keep `up`."""
        r = self.ratio
        b, k = up.shape[:2]
        coarse_shape = torch.tensor(refined.shape[1:], device=up.device)
        fine_shape = coarse_shape * r
        child = torch.stack(torch.meshgrid(*[torch.arange(r, device=up.device)] * 3, indexing="ij"), -1).reshape(-1, 3)
        out = []
        for i in range(b):
            parents = refined[i].nonzero()  # (N, 3) coarse indices
            if parents.numel() == 0:
                out.append(up[i])
                continue
            fine_idx = (parents[:, None, :] * r + child[None]).reshape(-1, 3)  # (N r^3, 3)
            # fine voxel centres as normalised (z, y, x); border padding = the edge clamping of F.interpolate
            norm = (fine_idx.to(features.dtype) + 0.5) / fine_shape.to(features.dtype) * 2 - 1
            grid = norm.flip(-1).view(1, 1, 1, -1, 3)
            sampled = F.grid_sample(
                features[i : i + 1], grid, mode="bilinear", padding_mode="border", align_corners=False
            )
            sampled = sampled.view(features.shape[1], -1).t()  # (N r^3, C)
            child_id = torch.arange(r**3, device=up.device).repeat(parents.shape[0])
            delta = self.fine_mlp(sampled + self.child_embedding(child_id))  # (N r^3, 17)
            flat = (fine_idx[:, 0] * fine_shape[1] + fine_idx[:, 1]) * fine_shape[2] + fine_idx[:, 2]
            out.append(up[i].reshape(k, -1).index_add(1, flat, delta.t().to(up.dtype)).view_as(up[i]))
        return torch.stack(out)
