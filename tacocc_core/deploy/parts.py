"""The parts of a TACOcc network that export to ONNX, as modules whose forward is a plain tensor graph.

A streamed frame (`TACOcc.forward_step`) runs, in order:

    conditioning, LiDAR branch (spconv)             PyTorch
    `ImageToVolume`: image branch + view transform  exported
    adaptive fuser (KNN retrieval)                   PyTorch
    ego-motion warp of the temporal state            PyTorch (3D grid_sample needs ONNX opset 20)
    `VolumeToLogits`: ConvLSTM cell + cascaded head  exported

Both modules compute what the eager network computes in eval mode (the head's dense refinement,
`CascadedOccupancyHead._refine_dense`), written with operators that export: no `out=` arguments, no
host-side decisions, the frustum-to-voxel indices of the view transform passed in as inputs (they depend
on the calibration only, and the PyTorch side keeps them cached).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from tacocc_core.labels import EMPTY
from tacocc_core.model.convlstm import convlstm_step
from tacocc_core.model.lss import LSSViewTransform, feature_pixels, frustum_points, voxel_indices
from tacocc_core.model.tacocc import TACOcc


def feature_size(image_hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """(h, w) of the image branch's feature map for (H, W) images: each stride-2 step of a ResNet rounds up."""
    h, w = image_hw
    while stride > 1:
        h, w, stride = -(-h // 2), -(-w // 2), stride // 2
    return h, w


def frustum_voxel_index(
    view_transform: LSSViewTransform,
    cam2img: torch.Tensor,
    cam2lidar: torch.Tensor,
    feat_hw: tuple[int, int],
    image_hw: tuple[int, int],
) -> torch.Tensor:
    """The `voxel_index` input of `ImageToVolume` for a calibration.

    cam2img (B, V, 3, 3), cam2lidar (B, V, 4, 4) -> (B V D h w,) int64: for each frustum point, in (B, V, D, h, w)
    order, its voxel in (B, X, Y, Z) order, or B X Y Z (one row past the grid) when it falls outside the grid.
    """
    b, v = cam2img.shape[:2]
    depths = view_transform.depths.to(cam2img.device)
    d = len(depths)
    h, w = feat_hw
    xyz = frustum_points(cam2img, cam2lidar, feature_pixels(feat_hw, image_hw), depths)
    batch = torch.arange(b, device=cam2img.device).view(b, 1, 1, 1, 1).expand(b, v, d, h, w)
    kept, flat = voxel_indices(xyz.reshape(-1, 3), batch.reshape(-1), view_transform.grid)
    outside = b * math.prod(view_transform.grid.shape)
    index = torch.full((b * v * d * h * w,), outside, dtype=torch.int64, device=cam2img.device)
    index[kept] = flat
    return index


class _ScatterAddRows(torch.autograd.Function):
    """out = data with `updates` rows added at rows `index` (repeated indices add up); ONNX ScatterND(add)."""

    @staticmethod
    def forward(ctx, data: torch.Tensor, index: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        return data.index_add(0, index, updates)

    @staticmethod
    def symbolic(g, data, index, updates):
        axis = g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64))
        return g.op("ScatterND", data, g.op("Unsqueeze", index, axis), updates, reduction_s="add")


def scatter_add_rows(data: torch.Tensor, index: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
    """data: (M, C); index: (K,) int64 rows of data; updates: (K, C) -> (M, C) with the rows summed in."""
    out = _ScatterAddRows.apply(data, index, updates)
    assert isinstance(out, torch.Tensor)
    return out


class ImageToVolume(nn.Module):
    """Image branch + LSS view transform of a TACOcc network (shares its weights; eval mode).

    forward(images (B, V, 3, H, W) uint8, sky_masks (B, V, H, W) bool, camera_valid (B, V) float32,
    voxel_index (B V D h w,) int64) -> (image_volume (B, C, X, Y, Z) float32 on the coarse grid, LiDAR frame;
    image_occupied (B, X, Y, Z) bool; depth_logits (B, V, D, h, w)).

    `voxel_index` is `frustum_voxel_index` of the calibration: each frustum point's voxel, or one row past
    the grid for the points outside it (summed into a row that is dropped: no gather of the points inside).
    """

    def __init__(self, model: TACOcc) -> None:
        super().__init__()
        encoder = model.encoder
        self.backbone = encoder.backbone
        self.view_transform = encoder.view_transform
        self.register_buffer("pixel_mean", encoder.pixel_mean.clone(), persistent=False)
        self.grid_shape = tuple(self.view_transform.grid.shape)
        self.depth_bins = len(self.view_transform.depths)

    def forward(
        self,
        images: torch.Tensor,
        sky_masks: torch.Tensor,
        camera_valid: torch.Tensor,
        voxel_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, v, _, h, w = images.shape
        x = images.reshape(b * v, 3, h, w).float() / 255.0
        x = torch.where(sky_masks.reshape(b * v, 1, h, w), cast(torch.Tensor, self.pixel_mean), x)
        feats = self.backbone(x)
        vt = self.view_transform
        d, c = self.depth_bins, vt.channels
        fh, fw = feats.shape[-2:]
        out = vt.head(feats).view(b, v, d + c, fh, fw)
        depth_logits = out[:, :, :d]
        prob = depth_logits.softmax(dim=2)  # (B, V, D, h, w)
        context = out[:, :, d:].permute(0, 1, 3, 4, 2)  # (B, V, h, w, C)
        valid = camera_valid[:, :, None, None, None, None]  # (B, V, 1, 1, 1, 1)
        # one row of C + 1 values per frustum point: depth probability x context, and the camera's validity,
        # which counts the points of a voxel (as the eager view transform)
        weighted = prob[..., None] * context[:, :, None] * valid  # (B, V, D, h, w, C)
        rows = torch.cat([weighted, valid.expand(b, v, d, fh, fw, 1)], dim=-1).reshape(-1, c + 1)
        nx, ny, nz = self.grid_shape
        cells = b * nx * ny * nz
        pooled = scatter_add_rows(rows.new_zeros(cells + 1, c + 1), voxel_index, rows)
        pooled = pooled[:cells].view(b, nx, ny, nz, c + 1).permute(0, 4, 1, 2, 3)
        return pooled[:, :c], pooled[:, c] > 0, depth_logits


class VolumeToLogits(nn.Module):
    """ConvLSTM cell of the temporal aggregator (when enabled) + the cascaded head, eval mode.

    With the aggregator enabled: forward(fused (B, C_f, Xc, Yc, Zc), hidden (B, C_h, Xc, Yc, Zc), cell (same))
    -> (hidden, cell, coarse_logits (B, 17, Xc, Yc, Zc), fine_logits (B, 17, X, Y, Z), refined (B, Xc, Yc, Zc)
    bool); `hidden` and `cell` are the previous state already warped into this frame (zeros for a new
    stream). Disabled: forward(fused) -> (coarse_logits, fine_logits, refined). LiDAR frame throughout.
    """

    def __init__(self, model: TACOcc) -> None:
        super().__init__()
        cell = model.temporal.cell
        self.gate_conv = cell.gate_conv if cell is not None else None
        head = model.head
        self.ratio = head.ratio
        self.coarse = head.coarse
        self.coarse_classifier = head.coarse_classifier
        self.first = cast(nn.Linear, head.fine_mlp[0])
        self.second = cast(nn.Linear, head.fine_mlp[2])
        self.child_embedding = head.child_embedding

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.gate_conv is None:
            (volume,) = inputs
            return self.head(volume)
        fused, hidden, cell = inputs
        hidden, cell = convlstm_step(fused, hidden, cell, self.gate_conv)
        return (hidden, cell, *self.head(hidden))

    def head(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, Xc, Yc, Zc) -> (coarse_logits, fine_logits, refined): `CascadedOccupancyHead` at inference."""
        r = self.ratio
        features = self.coarse(volume)
        coarse_logits = self.coarse_classifier(features)
        refined = coarse_logits.argmax(dim=1) != EMPTY
        up = F.interpolate(coarse_logits, scale_factor=r, mode="trilinear", align_corners=False)
        b, _, xc, yc, zc = features.shape
        projected = torch.matmul(features.permute(0, 2, 3, 4, 1), self.first.weight.t())
        hidden = F.interpolate(projected.permute(0, 4, 1, 2, 3), scale_factor=r, mode="trilinear", align_corners=False)
        channels = hidden.shape[1]
        hidden = hidden.permute(0, 2, 3, 4, 1).reshape(b, xc, r, yc, r, zc, r, channels)
        child_bias = self.first.bias + self.child_embedding.weight @ self.first.weight.t()  # (r^3, C)
        hidden = torch.relu(hidden + child_bias.view(r, 1, r, 1, r, channels))
        delta = torch.matmul(hidden.reshape(b, -1, channels), self.second.weight.t()) + self.second.bias
        delta = delta.transpose(1, 2).reshape(up.shape)  # (B, 17, X, Y, Z)
        children = refined[:, None, :, None, :, None, :, None].expand(b, 1, xc, r, yc, r, zc, r)
        fine_logits = up + delta * children.reshape(b, 1, *up.shape[2:]).to(delta.dtype)
        return coarse_logits, fine_logits, refined
