"""Learning-rate schedule (linear warm-up, then step-wise cosine decay) and the AdamW optimiser.

`lr_at` is a pure function of the step so that the schedule can be read, plotted and tested on its own;
`make_scheduler` wraps it in a `LambdaLR` whose state (the step counter) goes into checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning rate of optimiser step `step` (0-based).

    Linear warm-up from base_lr / warmup_steps at step 0 to base_lr at step warmup_steps - 1, then a cosine
    from base_lr at step warmup_steps down to base_lr * min_ratio at step total_steps; constant after that.

    Args:
        step: optimiser steps taken so far (>= 0).
        base_lr: peak learning rate (> 0).
        warmup_steps: steps of linear warm-up (0: none).
        total_steps: step at which the cosine reaches its floor (> warmup_steps).
        min_ratio: floor as a fraction of base_lr, in [0, 1].
    """
    if step < 0:
        raise ValueError(f"lr_at: step must be >= 0, got {step}")
    if not base_lr > 0:
        raise ValueError(f"lr_at: base_lr must be > 0, got {base_lr}")
    if warmup_steps < 0 or total_steps <= warmup_steps:
        raise ValueError(
            f"lr_at: need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"lr_at: min_ratio must be in [0, 1], got {min_ratio}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    floor = base_lr * min_ratio
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - floor)


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR that sets every group's lr to `lr_at(step, group's initial lr, ...)`.

    Call `.step()` once per optimiser step. Its `state_dict()` holds plain numbers (the lambda is not saved).
    """
    lr_at(0, 1.0, warmup_steps, total_steps, min_ratio)  # validate the arguments now, not at the first step

    def factor(step: int) -> float:
        return lr_at(step, 1.0, warmup_steps, total_steps, min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed and an undecayed AdamW group.

    Weight decay pulls weights towards zero, which is a useful prior for the matrices of convolutions and
    linear layers but not for biases, the scale and shift of normalisation layers, or learnable scalars
    (e.g. the velocity gate's beta): decaying those only shifts the function the layer computes. The split
    is by dimensionality: tensors with ndim >= 2 decay, tensors with ndim < 2 do not (the rule nanoGPT and
    timm use). Frozen parameters (requires_grad False) are left out.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, lr: float = 1e-4, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW over `model`'s trainable parameters, weight decay only on ndim >= 2 tensors.

    See `parameter_groups` for the split. Defaults are the paper's: lr 1e-4, weight decay 0.01.
    """
    if not lr > 0:
        raise ValueError(f"make_optimizer: lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"make_optimizer: weight_decay must be >= 0, got {weight_decay}")
    groups = parameter_groups(model, weight_decay)
    if not groups:
        raise ValueError(f"make_optimizer: {type(model).__name__} has no trainable parameters")
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
