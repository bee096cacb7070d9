"""Adaptive neighbourhood selector (paper Sec. III-A): per query voxel, how many neighbours k to retrieve.

An MLP maps a query's features to logits over the candidate k values. The paper's rule turns them into
one integer k: probabilities p = softmax((logits + g) / tau), their expectation over the candidates
E = sum_i p_i k_i, rounded to the nearest candidate. In training g is Gumbel noise scaled by
`noise_scale` (drawn from a generator of the fuser's own, so that it never shifts the global random
stream) and tau anneals to its end value over `tau_anneal_steps`. The noise keeps its full scale through
training, as the paper has it (`fuser.noise_fade: false`); with `noise_fade: true` it fades linearly to 0
over the same steps, from where training applies exactly the rule used at inference (noise 0, tau end).

The forward pass always uses the hard, integer k. The relaxation: the fuser computes its output for every
candidate k and mixes them with `KChoice.mix`, which is the one-hot of the chosen candidate in the
forward pass and carries the gradient of p (straight-through), so that the occupancy loss reaches the
selector through how much each candidate's output would have helped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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


def noise_scale_at(step: int | None, anneal_steps: int, fade: bool) -> float:
    """Scale of the Gumbel noise at a training step; `step=None` (inference) gives 0.

    fade False: 1 at every training step. fade True: 1 at step 0, linearly to 0 at anneal_steps.
    """
    if step is None:
        return 0.0
    if not fade:
        return 1.0
    if anneal_steps <= 0 or step >= anneal_steps:
        return 0.0
    return 1.0 - max(step, 0) / anneal_steps


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel samples on the CPU from `generator` (same draws whatever device the model is on)."""
    u = torch.rand(shape, generator=generator, dtype=torch.float32)
    return -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))


@dataclass
class KChoice:
    """The selector's decision for N queries over K candidates.

    Args:
        index: (N,) int64 chosen candidate.
        k: (N,) int64 chosen number of neighbours (candidates[index]).
        mix: (N, K) float32: forward exactly one_hot(index); backward the gradient of the probabilities.
        probs: (N, K) float32 the (noisy, tempered) softmax the choice was made from.
    """

    index: torch.Tensor
    k: torch.Tensor
    mix: torch.Tensor
    probs: torch.Tensor


def choose_k(
    logits: torch.Tensor,
    candidates: torch.Tensor,
    tau: float,
    noise: torch.Tensor | None = None,
    noise_scale: float = 0.0,
) -> KChoice:
    """The paper's rule: k = the candidate nearest to the expectation of the candidates under the softmax.

    Args:
        logits: (N, K) over the candidates.
        candidates: (K,) int64 or float, increasing k values.
        tau: softmax temperature.
        noise: (N, K) Gumbel samples (`gumbel_noise`), or None.
        noise_scale: multiplies `noise` (0: the deterministic inference rule).
    """
    z = logits.float()
    if noise is not None and noise_scale > 0:
        z = z + noise_scale * noise.to(z.device)
    probs = torch.softmax(z / tau, dim=-1)
    cand = candidates.to(probs.device, torch.float32)
    expectation = (probs.detach() * cand).sum(dim=-1)
    index = (expectation[:, None] - cand[None]).abs().argmin(dim=-1)
    hard = torch.nn.functional.one_hot(index, len(cand)).to(probs.dtype)
    mix = hard + (probs - probs.detach())
    return KChoice(index, candidates.to(probs.device).long()[index], mix, probs)


class NeighbourhoodSelector(nn.Module):
    """MLP: query features (N, C) -> logits (N, K) over the candidate k values."""

    def __init__(self, channels: int, num_candidates: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_candidates))

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return self.mlp(query)
