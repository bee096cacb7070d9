"""tacocc_core.flop_count: FLOPs per stage and of the stock ResNet, and the floor they put under a speed ratio."""

import dataclasses
import math

import pytest
import torch
import torchvision

from tacocc_core.config import load_preset
from tacocc_core.flop_count import flop_floor, stage_flops, stock_resnet_flops
from tacocc_core.model.grids import coarse_grid
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.synthetic_batch import synthetic_step_batch

TINY = load_preset("tiny")


def test_the_temporal_stage_counts_the_convlstm_gate_convolution():
    """The temporal stage is the warp (a few 4 x 4 pose products, its sampling is no matrix product) and the
    ConvLSTM: one 3x3x3 convolution from input and hidden state to the four gates, 2 FLOPs per multiply-add at
    every coarse voxel."""
    torch.manual_seed(0)
    model = TACOcc(TINY).eval()
    flops = stage_flops(model, synthetic_step_batch(TINY, 1, 2000))
    assert list(flops) == [
        "conditioning",
        "lidar_branch",
        "image_branch",
        "view_transform",
        "fuser",
        "temporal",
        "head",
    ]
    voxels = math.prod(coarse_grid(TINY).shape)
    c_in, c_h = TINY.fuser.channels, TINY.temporal.hidden_channels
    gate_convolution = 2 * voxels * (c_in + c_h) * 4 * c_h * 27
    assert gate_convolution <= flops["temporal"] <= gate_convolution + 2 * 4**3 * 8  # + the pose products
    assert flops["conditioning"] == 0  # sky masks and point filters: no matrix products
    assert flops["image_branch"] > flops["fuser"] > 0


def test_the_stock_resnet_counts_what_torchvision_documents():
    """One 224 x 224 image through ResNet-18 and ResNet-50: the multiply-adds torchvision lists for them."""
    for depth, weights in ((18, torchvision.models.ResNet18_Weights), (50, torchvision.models.ResNet50_Weights)):
        config = dataclasses.replace(
            TINY,
            cameras=dataclasses.replace(TINY.cameras, names=("CAM_FRONT",), image_size=(224, 224)),
            image_backbone=dataclasses.replace(TINY.image_backbone, depth=depth),
        )
        documented_gmacs = weights.IMAGENET1K_V1.meta["_ops"]
        assert stock_resnet_flops(config) / 2e9 == pytest.approx(documented_gmacs, rel=0.01)


def test_the_floor_is_the_ratio_of_the_counts():
    assert flop_floor(453, 176) == pytest.approx(2.574, abs=1e-3)
    with pytest.raises(ValueError, match="reference must count FLOPs"):
        flop_floor(10, 0)
