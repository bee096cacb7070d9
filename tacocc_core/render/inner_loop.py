"""The first case of paper Eq. 5: fit the Gaussians alone to L_rgb, from the network's Theta^0, to convergence.

The fit works on a detached copy of Theta (nothing reaches the network) with Adam, one learning rate per
parameter group (`InnerSchedule`). The "3dgs" schedule takes the per-group rates of 3D Gaussian splatting
(Kerbl et al. 2023, the reference implementation's `OptimizationParams` and `training_setup`): means
1.6e-4 per unit of scene extent, SH colour DC 2.5e-3 and the higher orders a twentieth of it, opacity
logits 0.05, log-scales 5e-3, rotations 1e-3, Adam eps 1e-15. The temporal centre and bandwidth, which 3DGS
does not have, follow the means (per second of window duration) and the log-scales. The "uniform" schedule
gives every group one rate (the loop before the paper's reading, kept as an ablation).

Convergence: after each step the loss is compared with the loss `window` steps earlier; the fit stops
when it fell by less than `tolerance` of that earlier value, or after `max_steps` steps. A step whose
loss or gradients are not finite ends the fit before it touches the parameters, so the result is always
the last finite Theta.

Densification: 3DGS's clone / split / prune is not used. Any of them would break the one-to-one match of
Theta^final and Theta^0 that L_pc compares.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tacocc_core.config import RendererConfig
from tacocc_core.render.free_params import FREE_FIELDS, FreeParams

log = logging.getLogger(__name__)

ADAM_EPS = 1e-15  # 3DGS's Adam epsilon
SH_REST_FACTOR = 1.0 / 20.0  # 3DGS: higher-order SH coefficients learn at a twentieth of the DC rate


@dataclass(frozen=True)
class InnerSchedule:
    """How the inner fit runs.

    Args:
        lrs: Adam learning rate per parameter group: every name of FREE_FIELDS, plus "sh_rest" for the SH
            coefficients past the DC term (the "sh" rate applies to the DC term).
        max_steps: step cap (>= 0).
        tolerance: relative L_rgb decrease over `window` steps below which the fit has converged; 0 never
            stops early.
        window: steps between the two losses the rule compares (>= 1).
    """

    lrs: dict[str, float]
    max_steps: int
    tolerance: float = 0.0
    window: int = 1

    def __post_init__(self) -> None:
        missing = [k for k in (*FREE_FIELDS, "sh_rest") if k not in self.lrs]
        if missing:
            raise ValueError(f"InnerSchedule: no learning rate for {missing}")
        bad = {k: v for k, v in self.lrs.items() if not (math.isfinite(v) and v > 0)}
        if bad or self.max_steps < 0 or not 0 <= self.tolerance < 1 or self.window < 1:
            raise ValueError(
                f"InnerSchedule: need lrs > 0, max_steps >= 0, 0 <= tolerance < 1, window >= 1; got bad lrs {bad}, "
                f"max_steps={self.max_steps}, tolerance={self.tolerance}, window={self.window}"
            )

    @classmethod
    def uniform(cls, lr: float, steps: int) -> InnerSchedule:
        """`steps` steps at one rate for every group, no convergence test."""
        return cls({name: lr for name in (*FREE_FIELDS, "sh_rest")}, steps)

    @classmethod
    def from_config(cls, r: RendererConfig, extent_m: float, duration_s: float) -> InnerSchedule:
        """The schedule of config.renderer.

        Args:
            r: config.renderer.
            extent_m: scene extent in metres (the means' rate is per metre of it), > 0.
            duration_s: duration of the frames rendered, seconds (mu_t's rate is per second of it); a
                floor of one second applies, so a single frame still has a rate.
        """
        if not extent_m > 0:
            raise ValueError(f"InnerSchedule.from_config: scene extent must be > 0 m, got {extent_m}")
        if r.inner_lr_schedule == "uniform":
            lrs = {name: r.inner_lr for name in (*FREE_FIELDS, "sh_rest")}
        else:
            lrs = {
                "means": r.inner_lr_means * extent_m,
                "quats": r.inner_lr_quats,
                "log_scales": r.inner_lr_log_scales,
                "logit_opacities": r.inner_lr_opacities,
                "sh": r.inner_lr_sh,
                "sh_rest": r.inner_lr_sh * SH_REST_FACTOR,
                "mu_t": r.inner_lr_mu_t * max(duration_s, 1.0),
                "log_sigma_t": r.inner_lr_log_sigma_t,
            }
        return cls(lrs, r.inner_steps, r.inner_tolerance, r.inner_window)


@dataclass
class InnerLoopResult:
    """Outcome of the inner fit.

    Args:
        theta: the optimised parameters, detached.
        losses: L_rgb of each Theta the fit evaluated, Theta^0 first.
        stopped: why the fit ended on a non-finite loss or gradient, or None.
        converged: True when the convergence rule ended the fit (False: step cap, or stopped).
        steps: parameter updates made.
    """

    theta: FreeParams
    losses: list[float]
    stopped: str | None
    converged: bool = False
    steps: int = 0


def has_converged(losses: list[float], tolerance: float, window: int) -> bool:
    """True when the last loss is less than `tolerance` (relative) below the loss `window` steps earlier."""
    if tolerance <= 0 or len(losses) <= window:
        return False
    before, now = losses[-1 - window], losses[-1]
    return (before - now) < tolerance * abs(before)


def _leaves(theta0: FreeParams) -> dict[str, torch.Tensor]:
    """Detached leaf copies of Theta^0, the SH split into its DC term ("sh") and the rest ("sh_rest")."""
    leaves = {name: theta0[name].detach().clone() for name in FREE_FIELDS if name != "sh"}
    sh = theta0["sh"].detach()
    leaves["sh"] = sh[:, :1].clone()
    leaves["sh_rest"] = sh[:, 1:].clone()
    return {k: v.requires_grad_(True) for k, v in leaves.items()}


def _theta(leaves: dict[str, torch.Tensor]) -> FreeParams:
    theta = {name: leaves[name] for name in FREE_FIELDS if name != "sh"}
    theta["sh"] = torch.cat([leaves["sh"], leaves["sh_rest"]], dim=1)
    return theta


def optimise_gaussians(
    theta0: FreeParams, loss_fn: Callable[[FreeParams], torch.Tensor], schedule: InnerSchedule
) -> InnerLoopResult:
    """Fit a detached copy of Theta^0 to L_rgb under `schedule`.

    Args:
        theta0: the network's Theta^0 (left untouched, its graph is not used).
        loss_fn: Theta -> scalar L_rgb; must depend on nothing else that requires gradients.
        schedule: learning rates, step cap and convergence rule.

    Returns:
        the last finite Theta and how the fit ended. When the fit converged, the last entry of `losses`
        is the returned Theta's own L_rgb; otherwise that Theta had one more update after it.
    """
    leaves = _leaves(theta0)
    groups = [{"params": [leaves[name]], "lr": schedule.lrs[name]} for name in leaves if leaves[name].numel() > 0]
    optimiser = torch.optim.Adam(groups, eps=ADAM_EPS) if groups else None
    losses: list[float] = []
    stopped = None
    converged = False
    updates = 0
    for step in range(schedule.max_steps):
        loss = loss_fn(_theta(leaves))
        if optimiser is not None:
            optimiser.zero_grad(set_to_none=True)
        loss.backward()
        # Host-device sync, once per step: the value feeds the convergence rule, and a non-finite loss or
        # gradient must not reach the parameters.
        grads = [p.grad for p in leaves.values() if p.grad is not None]
        finite = torch.stack([loss.detach().isfinite()] + [g.isfinite().all() for g in grads]).all()
        if not bool(finite):
            stopped = f"inner step {step}: non-finite L_rgb ({loss.item()}) or gradient; kept the last finite Theta"
            log.warning("Gaussian inner loop stopped early: %s", stopped)
            break
        losses.append(loss.item())
        if has_converged(losses, schedule.tolerance, schedule.window):
            converged = True
            break
        if optimiser is not None:
            optimiser.step()
        updates += 1
    theta = {k: v.detach() for k, v in _theta(leaves).items()}
    return InnerLoopResult(theta, losses, stopped, converged, updates)
