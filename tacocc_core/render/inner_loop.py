"""The first case of paper Eq. 5: optimise the Gaussians alone on L_rgb, starting from the network's Theta^0.

The loop works on a detached copy of Theta (so nothing reaches the network), with Adam at one learning
rate for every parameter group. A step whose loss or gradients are not finite ends the loop before it
touches the parameters, so the result is always the last finite Theta.

Densification: gsplat's `DefaultStrategy` (clone / split / prune from view-space gradients) is not used.
With gsplat's defaults it first acts at step 500 (`refine_start_iter`) and then every 100 steps
(`refine_every`), far beyond an inner loop of a few steps per training iteration, and any clone, split or
prune would break the one-to-one match of Theta^final and Theta^0 that L_pc compares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tacocc_core.render.free_params import FREE_FIELDS, FreeParams, detached_copy

log = logging.getLogger(__name__)


@dataclass
class InnerLoopResult:
    """Outcome of the inner loop.

    Args:
        theta: the optimised parameters, detached.
        losses: L_rgb before each step taken (len = steps taken).
        stopped: why the loop ended early (a non-finite loss or gradient), or None.
    """

    theta: FreeParams
    losses: list[float]
    stopped: str | None


def optimise_gaussians(
    theta0: FreeParams, loss_fn: Callable[[FreeParams], torch.Tensor], steps: int, lr: float
) -> InnerLoopResult:
    """Run `steps` Adam steps on a detached copy of Theta^0.

    Args:
        theta0: the network's Theta^0 (left untouched, its graph is not used).
        loss_fn: Theta -> scalar L_rgb; must depend on nothing else that requires gradients.
        steps: number of updates (config.renderer.inner_steps).
        lr: Adam learning rate (config.renderer.inner_lr).
    """
    if steps < 0 or not lr > 0:
        raise ValueError(f"optimise_gaussians: need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    theta = detached_copy(theta0)
    optimiser = torch.optim.Adam([theta[name] for name in FREE_FIELDS], lr=lr)
    losses: list[float] = []
    stopped = None
    for step in range(steps):
        loss = loss_fn(theta)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        # Host-device sync, once per step: the value is logged, and a non-finite loss or gradient must not
        # reach the parameters.
        grads = [g for name in FREE_FIELDS if (g := theta[name].grad) is not None]
        finite = torch.stack([loss.detach().isfinite()] + [g.isfinite().all() for g in grads]).all()
        if not bool(finite):
            stopped = f"inner step {step}: non-finite L_rgb ({loss.item()}) or gradient; kept the last finite Theta"
            log.warning("Gaussian inner loop stopped early: %s", stopped)
            break
        losses.append(loss.item())
        optimiser.step()
    return InnerLoopResult({name: theta[name].detach() for name in FREE_FIELDS}, losses, stopped)
