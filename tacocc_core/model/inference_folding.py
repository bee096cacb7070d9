"""Inference-only rewrites of a trained TACOcc network: the same function, fewer memory passes on the CPU.

`fold_for_inference(model)` returns a rewritten copy of an eval-mode network and leaves the original
(the one that trains, saves and loads state dicts) untouched:

- image trunk: each batch norm folded into the convolution before it (`torch.fx.experimental.optimization.fuse`,
  PyTorch's own conv-BN fusion, exact up to rounding in eval mode), and weights and input in channels-last
  memory, where oneDNN's 2D convolutions run without layout conversions;
- the temporal aggregator's and the head's 3D convolutions: oneDNN (`OneDnnConv3d`) on the CPU, where
  PyTorch picks its im2col path (`slow_conv3d_forward`) for a batch of one below about 20k input
  planes x rows; above that PyTorch already uses oneDNN and nothing changes.

The adaptive fuser is left as it is. Training never sees these rewrites: the Predictor applies them.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import cast

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from tacocc_core.model.image_backbone import ImageBackbone
from tacocc_core.model.tacocc import TACOcc


class OneDnnConv3d(nn.Conv3d):
    """An nn.Conv3d that calls oneDNN's convolution for CPU float32 input (no autocast, no autograd), else nn.Conv3d.

    Input (N, C_in, X, Y, Z) -> (N, C_out, X', Y', Z'), as nn.Conv3d (zero padding only).
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv3d) -> OneDnnConv3d:
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(
                f"OneDnnConv3d: zero padding given as numbers only, got {conv.padding_mode} {conv.padding}"
            )
        new = copy.copy(conv)
        new.__class__ = cls
        return cast(OneDnnConv3d, new)  # its class swapped above

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32 or x.requires_grad or torch.is_autocast_enabled("cpu"):
            return super().forward(x)
        return torch.ops.aten.mkldnn_convolution(
            x.contiguous(), self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
        )


class ChannelsLastBackbone(nn.Module):
    """An ImageBackbone whose trunk has its batch norms folded, run in channels-last memory.

    Input (N, 3, H, W) float in [0, 1]; output (N, fpn_channels, H / stride, W / stride), contiguous.
    """

    mean: torch.Tensor  # (1, 3, 1, 1) buffer, as ImageBackbone's
    std: torch.Tensor

    def __init__(self, backbone: ImageBackbone) -> None:
        super().__init__()
        self.first = backbone.first
        self.stride = backbone.stride
        self.trunk = fuse(backbone.trunk).to(memory_format=torch.channels_last)
        self.fpn = copy.deepcopy(backbone.fpn).to(memory_format=torch.channels_last)
        self.register_buffer("mean", backbone.mean.clone(), persistent=False)
        self.register_buffer("std", backbone.std.clone(), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        feats = self.fpn(OrderedDict(self.trunk(x)))
        return feats[self.first].contiguous()


def fold_for_inference(model: TACOcc) -> TACOcc:
    """A rewritten copy of `model` (which must be in eval mode) for inference; see the module doc."""
    if model.training:
        raise ValueError("fold_for_inference: the network must be in eval mode (batch norm uses running statistics)")
    backbone = model.encoder.backbone
    if not isinstance(backbone, ImageBackbone):
        raise ValueError(
            f"fold_for_inference: the network is folded already (its backbone is {type(backbone).__name__})"
        )
    folded = copy.deepcopy(model)
    folded.encoder.backbone = ChannelsLastBackbone(backbone)
    if torch.backends.mkldnn.is_available():
        for parent in (folded.temporal, folded.head):
            _swap_conv3d(parent)
    return folded.eval()


def _swap_conv3d(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is nn.Conv3d and child.padding_mode == "zeros" and not isinstance(child.padding, str):
            setattr(module, name, OneDnnConv3d.from_conv(child))
        else:
            _swap_conv3d(child)
