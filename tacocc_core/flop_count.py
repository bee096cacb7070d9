"""Floating-point operations of the network per stage, and of the stock ResNet: the floor under a speed ratio.

Counted by `torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts 2): dense convolutions, matrix
products and attention. It does not see spconv's sparse convolutions, the KNN search, the sky masks or
elementwise work, so the counts are a lower bound on a frame's work. The network is counted unfolded (as it
trains): inference folding only merges batch norms into convolutions and calls oneDNN directly, which the
counter does not see.

If every stage of the network ran at the FLOP rate the stock ResNet reaches, a frame would take (network
FLOPs / ResNet FLOPs) times the ResNet's time: `flop_floor` is that ratio, the least that the frame time
divided by the stock network's time (`tacocc bench --reference`) can be at the stock network's efficiency.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from tacocc_core.config import ModelConfig
from tacocc_core.model.image_backbone import build_resnet
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.timing import StageTimer


class FlopStages(StageTimer):
    """A stage timer that counts FLOPs instead of milliseconds: `flops[stage]` after the stages ran."""

    def __init__(self) -> None:
        super().__init__("cpu")
        self.flops: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with FlopCounterMode(display=False) as counter:
            yield
        self.flops[name] = self.flops.get(name, 0) + counter.get_total_flops()


def frame_flops(model: TACOcc, step_batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of the first frame of a stream (`step_batch` in the `batch_at` layout, B = 1), all stages."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.forward_step(step_batch, np.eye(4), 0, "flops", None)
    return int(counter.get_total_flops())


def stage_flops(model: TACOcc, step_batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """FLOPs per stage (`StageTimer` names, in the order they ran) of the second frame of a stream.

    Args:
        model: the network, on the device of `step_batch` (its train/eval mode is kept; eval for inference).
        step_batch: one frame in the `batch_at` layout (B = 1 for a stream).

    The first frame only starts the temporal state; the second, 1 m further, warps and carries it as every
    later frame does. The fine head's share depends on how many coarse voxels it refines (the weights).
    """
    with torch.inference_mode():
        first = model.forward_step(step_batch, np.eye(4), 0, "flops", None)
        pose = np.eye(4)
        pose[1, 3] = 1.0
        counter = FlopStages()
        model.forward_step(step_batch, pose, 100_000_000, "flops", first.temporal.state, timer=counter)
    return counter.flops


def stock_resnet_flops(config: ModelConfig) -> int:
    """FLOPs of the stock torchvision ResNet of the preset's depth (full classifier) on its V x 3 x H x W images."""
    net = build_resnet(config.image_backbone.depth, None).eval()
    h, w = config.cameras.image_size
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(len(config.cameras.names), 3, h, w))
    return counter.get_total_flops()


def flop_floor(network_flops: int, reference_flops: int) -> float:
    """The ratio of a frame's time to the stock network's time if both ran at the same FLOP rate."""
    if reference_flops <= 0:
        raise ValueError(f"flop_floor: the reference must count FLOPs, got {reference_flops}")
    return network_flops / reference_flops
