"""Image encoder: a torchvision ResNet trunk and torchvision's FPN neck, one output level.

Nothing is downloaded: the ResNet is built with random weights, or loaded from a local torchvision
checkpoint (`ImageBackboneConfig.pretrained`, read with `weights_only=True`).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import cast

import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FeaturePyramidNetwork

from tacocc_core.config import ImageBackboneConfig

# ImageNet statistics the torchvision ResNets were trained with (RGB, 0..1 scale).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BUILDERS = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
}
_STRIDES = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}


def build_resnet(depth: int, pretrained: str | None) -> nn.Module:
    """A torchvision ResNet of `depth` with random weights, or the weights of a local checkpoint file."""
    if depth not in _BUILDERS:
        raise ValueError(f"image_backbone.depth: expected one of {sorted(_BUILDERS)}, got {depth}")
    model = _BUILDERS[depth](weights=None)
    if pretrained:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"image_backbone.pretrained: checkpoint {path} not found")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ValueError(
                f"image_backbone.pretrained: {path} does not fit a torchvision ResNet-{depth}: "
                f"missing {missing[:5]}, unexpected {list(unexpected)[:5]}"
            )
    return model


class ImageBackbone(nn.Module):
    """Normalised RGB -> FPN features at `feature_stride`.

    Input `images`: (N, 3, H, W) float in [0, 1]. Output: (N, fpn_channels, H / stride, W / stride).
    """

    mean: torch.Tensor  # (1, 3, 1, 1) buffer: ImageNet channel means
    std: torch.Tensor  # (1, 3, 1, 1) buffer: ImageNet channel standard deviations

    def __init__(self, config: ImageBackboneConfig):
        super().__init__()
        self.stride = config.feature_stride
        resnet = build_resnet(config.depth, config.pretrained)
        kept = list(_STRIDES)[: config.stages]
        layers = [name for name in kept if _STRIDES[name] >= config.feature_stride]
        self.trunk = IntermediateLayerGetter(resnet, return_layers={name: name for name in layers})
        in_channels = [_out_channels(getattr(resnet, name)) for name in layers]
        self.fpn = FeaturePyramidNetwork(in_channels, config.fpn_channels)
        self.first = layers[0]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        feats = self.fpn(OrderedDict(self.trunk(x)))
        return feats[self.first]


def _out_channels(layer: nn.Sequential) -> int:
    block = layer[-1]
    last = cast(nn.Conv2d, block.conv3 if hasattr(block, "conv3") else block.conv2)  # Bottleneck, BasicBlock
    return last.out_channels
