"""Occupancy loss: class-weighted cross-entropy + Lovasz-softmax on the coarse and fine head outputs.

    L_occ = sum over stage s in (coarse, fine) of w_s * (w_ce * CE_s + w_lovasz * Lovasz_s)

with the weights from `LossConfig`; voxels labelled 255 are ignored by both terms. The coarse stage
is supervised with labels pooled from the fine grid (`pool_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tacocc_core.config import LossConfig
from tacocc_core.labels import EMPTY, IGNORE, NUM_CLASSES
from tacocc_core.losses.lovasz import lovasz_softmax
from tacocc_core.model.occupancy_head import HeadOutput


def pool_labels(labels: torch.Tensor, factor: int) -> torch.Tensor:
    """Fine labels -> coarse labels, one per block of factor^3 fine voxels.

    Rule: a block whose fine voxels are all 255 is 255; otherwise, if any known fine voxel holds a
    semantic class (1..16) the block takes the most frequent such class (ties: the lowest class id),
    so that the coarse stage calls occupied every block the fine stage must refine; else it is empty (0).

    Args:
        labels: (B, X, Y, Z) uint8/int labels, X, Y, Z divisible by `factor`.
        factor: fine voxels per coarse voxel along each axis.

    Returns:
        (B, X/f, Y/f, Z/f) uint8.
    """
    b, x, y, z = labels.shape
    if any(n % factor for n in (x, y, z)):
        raise ValueError(f"pool_labels: grid {(x, y, z)} is not divisible by factor {factor}")
    f = factor
    lab = labels.long()
    lab = torch.where(lab == IGNORE, torch.full_like(lab, NUM_CLASSES), lab)  # 255 -> slot 17
    blocks = lab.view(b, x // f, f, y // f, f, z // f, f).permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, f**3)
    slots = NUM_CLASSES + 1
    rows = torch.arange(blocks.shape[0], device=labels.device)[:, None]
    counts = torch.bincount((rows * slots + blocks).reshape(-1), minlength=blocks.shape[0] * slots)
    counts = counts.view(-1, slots)
    semantic = counts[:, 1:NUM_CLASSES]
    best = semantic.argmax(dim=1) + 1  # argmax returns the first maximum: the lowest class id on ties
    out = torch.where(semantic.sum(1) > 0, best, torch.full_like(best, EMPTY))
    out = torch.where(counts[:, :NUM_CLASSES].sum(1) == 0, torch.full_like(best, IGNORE), out)
    return out.view(b, x // f, y // f, z // f).to(torch.uint8)


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None
) -> torch.Tensor:
    """Mean class-weighted CE over non-ignored voxels; 0 (attached to `logits`) when there are none.

    Args:
        logits: (B, K, X, Y, Z).
        labels: (B, X, Y, Z), 255 ignored.
        class_weights: (K,) or None for uniform.
    """
    target = labels.long()
    if not (target != IGNORE).any():  # host sync; CE of an empty set would be NaN
        return logits.sum() * 0.0
    weight = None if class_weights is None else class_weights.to(logits.device, torch.float32)
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=IGNORE)


@dataclass(frozen=True)
class LossTerms:
    """Every term, unweighted, and the weighted total that is optimised."""

    total: torch.Tensor
    ce_coarse: torch.Tensor
    lovasz_coarse: torch.Tensor
    ce_fine: torch.Tensor
    lovasz_fine: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """Detached Python floats for logging (a host sync)."""
        return {k: float(v.detach()) for k, v in self.__dict__.items()}


class OccupancyLoss(nn.Module):
    """CE + Lovasz-softmax on both head stages, weighted by a `LossConfig`.

    Args:
        config: the loss section of the model config.
        cascade_ratio: fine voxels per coarse voxel along each axis (pooling factor of the labels).
    """

    class_weights: torch.Tensor | None  # (17,) buffer, or None for uniform weights

    def __init__(self, config: LossConfig, cascade_ratio: int) -> None:
        super().__init__()
        self.config = config
        self.cascade_ratio = cascade_ratio
        weights = torch.tensor(config.class_weights, dtype=torch.float32) if config.class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)

    def _stage(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zero = logits.sum() * 0.0
        ce = weighted_cross_entropy(logits, labels, self.class_weights) if self.config.ce_weight > 0 else zero
        lovasz = lovasz_softmax(logits, labels) if self.config.lovasz_weight > 0 else zero
        return ce, lovasz

    def forward(self, output: HeadOutput, labels: torch.Tensor) -> LossTerms:
        """output: the head's coarse and fine logits; labels: (B, X, Y, Z) fine-grid labels, 255 ignored."""
        if labels.shape != output.fine_logits.shape[:1] + output.fine_logits.shape[2:]:
            raise ValueError(
                f"OccupancyLoss: labels {tuple(labels.shape)} do not match the fine logits "
                f"{tuple(output.fine_logits.shape)} (expected (B, X, Y, Z))"
            )
        c = self.config
        ce_c, lov_c = self._stage(output.coarse_logits, pool_labels(labels, self.cascade_ratio))
        ce_f, lov_f = self._stage(output.fine_logits, labels)
        total = c.coarse_weight * (c.ce_weight * ce_c + c.lovasz_weight * lov_c) + c.fine_weight * (
            c.ce_weight * ce_f + c.lovasz_weight * lov_f
        )
        return LossTerms(total, ce_c, lov_c, ce_f, lov_f)
