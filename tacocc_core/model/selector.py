"""Adaptive neighbourhood selector (paper Sec. III-A): per query voxel, how many neighbours k to retrieve.

An MLP maps a query's features to logits over the candidate k values. In training, a Gumbel-Softmax
sample of those logits (temperature `tau_at(step)`) gives probabilities; their expectation over the
candidates, rounded, is k, and the straight-through estimator passes the gradient of the expectation
through the rounding. In eval, k is the candidate with the largest logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def tau_at(step: int | None, tau: tuple[float, float], anneal_steps: int) -> float:
    """Gumbel-Softmax temperature at a training step: exponential from tau[0] to tau[1] over anneal_steps.

    `step=None` (inference) or step >= anneal_steps gives tau[1].
    """
    start, end = tau
    if step is None or anneal_steps <= 0 or step >= anneal_steps:
        return float(end)
    frac = max(step, 0) / anneal_steps
    return float(start * (end / start) ** frac)


def select_k(
    logits: torch.Tensor, candidates: torch.Tensor, tau: float, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose k per query.

    Args:
        logits: (N, K) over the candidates.
        candidates: (K,) float, increasing k values.
        tau: Gumbel-Softmax temperature (training only).
        training: sample with Gumbel noise + STE if True, argmax if False.

    Returns:
        k: (N,) float; integer-valued forward. In training its gradient is that of the expectation.
        k_soft: (N,) float, the expectation (equal to k in eval).
    """
    if training:
        probs = F.gumbel_softmax(logits.float(), tau=tau, hard=False, dim=-1)
        k_soft = (probs * candidates).sum(dim=-1)
        k_hard = torch.round(k_soft)
        return k_hard + (k_soft - k_soft.detach()), k_soft
    k = candidates[logits.argmax(dim=-1)]
    return k, k


def slot_mask(k: torch.Tensor, k_soft: torch.Tensor, slots: int) -> torch.Tensor:
    """(N, slots) float: 1 for neighbour slots j < k, else 0, with a straight-through gradient.

    Forward: exactly (j < k). Backward: the gradient of clamp(k_soft - j, 0, 1), so that the slot at the
    boundary of the soft k passes gradient to the selector.
    """
    j = torch.arange(slots, device=k.device, dtype=torch.float32)
    hard = (j[None] < k.detach()[:, None]).float()
    soft = (k_soft[:, None] - j[None]).clamp(0, 1)
    return hard + (soft - soft.detach())


class NeighbourhoodSelector(nn.Module):
    """MLP: query features (N, C) -> logits (N, K) over the candidate k values."""

    def __init__(self, channels: int, num_candidates: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_candidates))

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return self.mlp(query)
