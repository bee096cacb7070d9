"""Temporal weighting of Gaussians and the velocity-adaptive bandwidth (paper Sec. III-B, Eq. 3-4).

Temporal weight: a Gaussian with temporal centre mu_t and bandwidth sigma_t is rendered at time t with
opacity o * w(t), w(t) = exp(-0.5 ((t - mu_t) / sigma_t)^2), i.e. N(t | mu_t, sigma_t^2) rescaled so that
w(mu_t) = 1 (a Gaussian seen at its own time keeps its full opacity).

Velocity gate (Eq. 4): tau = beta / dt * E[||v_scene||]. We read v_scene as the per-voxel displacement
between adjacent, ego-compensated LiDAR frames (metres, what registration gives), so tau is a speed in m/s
and a Gaussian is "moving" when its own speed ||d|| / dt exceeds tau; equivalently ||d|| > beta * E[||d||].
beta is learnable (kept positive as exp(log_beta)).

Widening rule (the paper says "temporarily increased" without a formula): a moving Gaussian's bandwidth is
multiplied by `widen` (>= 1), sigma_t' = sigma_t * (1 + (widen - 1) g), g = 1 when speed > tau else 0.
The forward pass uses this hard gate exactly; the backward pass uses the slope of the soft gate
sigmoid((speed - tau) / (softness * tau)) (a straight-through estimator), so beta receives gradients.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tacocc_core.config import RendererConfig


def temporal_weight(t: float | torch.Tensor, mu_t: torch.Tensor, sigma_t: torch.Tensor) -> torch.Tensor:
    """(N,) weights in (0, 1], exactly 1 at t = mu_t.

    Args:
        t: render time, seconds (same clock as mu_t).
        mu_t: (N,) temporal centres, seconds.
        sigma_t: (N,) temporal bandwidths, seconds, > 0.
    """
    z = (t - mu_t) / sigma_t
    return torch.exp(-0.5 * z * z)


def temporal_opacities(
    opacities: torch.Tensor, t: float | torch.Tensor, mu_t: torch.Tensor, sigma_t: torch.Tensor
) -> torch.Tensor:
    """(N,) opacities at render time t: o * temporal_weight(t, mu_t, sigma_t)."""
    return opacities * temporal_weight(t, mu_t, sigma_t)


def velocity_threshold(scene_displacement: torch.Tensor, beta: torch.Tensor, dt: float) -> torch.Tensor:
    """The threshold tau of Eq. 4, in m/s.

    Args:
        scene_displacement: (M,) norms of the per-voxel displacements between adjacent frames, metres.
        beta: scalar tensor, > 0.
        dt: frame interval, seconds, > 0.

    Returns:
        scalar tensor beta / dt * mean(scene_displacement); 0 when M = 0 (then nothing is moving).
    """
    if not dt > 0:
        raise ValueError(f"velocity_threshold: frame interval dt must be > 0 seconds, got {dt}")
    if scene_displacement.numel() == 0:
        return beta * 0.0
    return beta / dt * scene_displacement.mean()


def moving_gate(speed: torch.Tensor, tau: torch.Tensor, softness: float) -> torch.Tensor:
    """(N,) gate: forward exactly 1.0 where speed > tau else 0.0; gradient of the soft sigmoid gate.

    Args:
        speed: (N,) m/s, >= 0.
        tau: scalar threshold, m/s.
        softness: width of the soft gate relative to tau (> 0).
    """
    hard = (speed > tau).to(speed.dtype)
    soft = torch.sigmoid((speed - tau) / (softness * tau + 1e-6))
    return hard + soft - soft.detach()


def widen_bandwidth(
    sigma_t: torch.Tensor, speed: torch.Tensor, tau: torch.Tensor, widen: float, softness: float
) -> torch.Tensor:
    """(N,) bandwidths sigma_t * (1 + (widen - 1) * gate): moving Gaussians widened by `widen`, others kept."""
    return sigma_t * (1.0 + (widen - 1.0) * moving_gate(speed, tau, softness))


class VelocityGate(nn.Module):
    """Holds the learnable beta of Eq. 4 and applies the widening rule of the module docstring.

    Args:
        beta_init: initial beta (> 0).
        widen: factor applied to sigma_t of moving Gaussians (>= 1).
        softness: width of the soft gate used for gradients, relative to tau.
    """

    def __init__(self, beta_init: float = 1.0, widen: float = 2.0, softness: float = 0.1) -> None:
        super().__init__()
        if not beta_init > 0 or not widen >= 1 or not softness > 0:
            raise ValueError(
                f"VelocityGate: need beta_init > 0, widen >= 1, softness > 0; got {beta_init, widen, softness}"
            )
        self.log_beta = nn.Parameter(torch.tensor(math.log(beta_init)))
        self.widen = widen
        self.softness = softness

    @classmethod
    def from_config(cls, renderer: RendererConfig) -> VelocityGate:
        """The gate of `config.renderer` (velocity_beta_init, velocity_widen, velocity_softness)."""
        return cls(renderer.velocity_beta_init, renderer.velocity_widen, renderer.velocity_softness)

    @property
    def beta(self) -> torch.Tensor:
        return self.log_beta.exp()

    def forward(
        self, sigma_t: torch.Tensor, displacement: torch.Tensor, scene_displacement: torch.Tensor, dt: float
    ) -> torch.Tensor:
        """Widened bandwidths.

        Args:
            sigma_t: (N,) bandwidths, seconds.
            displacement: (N,) displacement norm of each Gaussian's voxel between adjacent frames, metres
                (0 where unknown).
            scene_displacement: (M,) displacement norms of all voxels of the scene, metres.
            dt: frame interval, seconds.
        """
        tau = velocity_threshold(scene_displacement, self.beta, dt)
        return widen_bandwidth(sigma_t, displacement / dt, tau, self.widen, self.softness)
