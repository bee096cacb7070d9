"""The unconstrained Gaussian parameters Theta that the inner loop optimises and L_pc compares.

Theta of N Gaussians is a dict of tensors (the parameterisation of 3DGS / gsplat's trainer):
    means           (N, 3) metres, LiDAR frame
    quats           (N, 4) (w, x, y, z), any non-zero length
    log_scales      (N, 3) log of the standard deviations in metres
    logit_opacities (N,)   logit of the opacity
    sh              (N, K, 3) spherical-harmonics colour coefficients
    mu_t            (N,)   temporal centre, seconds relative to the frame the Gaussians belong to
    log_sigma_t     (N,)   log of the temporal bandwidth in seconds
Every real value is a valid Gaussian, so a plain optimiser (Adam) can work on it.

Parameter consistency (paper Sec. III-C, after Fu et al. 2024): L_pc = sum_i ||Theta_i^final - Theta_i^0||_1,
the L1 norm of each Gaussian's full parameter vector summed over the N Gaussians, as the paper writes it
(reduction "sum"); reduction "mean" divides it by N. Quaternions are normalised on both sides first, since
their length does not matter.
"""

from __future__ import annotations

import torch

from tacocc_core.render.gaussians import Gaussians

FREE_FIELDS = ("means", "quats", "log_scales", "logit_opacities", "sh", "mu_t", "log_sigma_t")

FreeParams = dict[str, torch.Tensor]


def check_free(theta: FreeParams) -> int:
    """Validate the keys and leading sizes of Theta; returns N."""
    missing = [k for k in FREE_FIELDS if k not in theta]
    extra = [k for k in theta if k not in FREE_FIELDS]
    if missing or extra:
        raise ValueError(f"Gaussian parameters: missing keys {missing}, unknown keys {extra}")
    n = int(theta["means"].shape[0])
    for name in FREE_FIELDS:
        if theta[name].shape[0] != n:
            raise ValueError(f"Gaussian parameters: {name} has {theta[name].shape[0]} rows, means have {n}")
    return n


def free_to_gaussians(theta: FreeParams) -> Gaussians:
    """Theta -> activated Gaussians (scales = exp, opacities = sigmoid, sigma_t = exp); differentiable."""
    check_free(theta)
    return Gaussians(
        means=theta["means"],
        quats=theta["quats"],
        scales=theta["log_scales"].exp(),
        opacities=torch.sigmoid(theta["logit_opacities"]),
        sh=theta["sh"],
        mu_t=theta["mu_t"],
        sigma_t=theta["log_sigma_t"].exp(),
    )


def detached_copy(theta: FreeParams) -> FreeParams:
    """Leaf copies of Theta with requires_grad=True, cut from the network's graph (the inner loop's start)."""
    return {name: theta[name].detach().clone().requires_grad_(True) for name in FREE_FIELDS}


def parameter_consistency(final: FreeParams, initial: FreeParams, reduction: str = "sum") -> torch.Tensor:
    """Scalar L_pc = sum_i ||Theta_i^final - Theta_i^0||_1 ("sum") or that over N ("mean").

    0 (still connected) when N = 0.

    Args:
        final: the optimised Theta (treated as a target: detach it before calling for Eq. 5).
        initial: Theta^0 as the network predicted it (gradients flow into it).
        reduction: "sum" (the paper's) or "mean" (config.renderer.pc_reduction).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"parameter_consistency: reduction must be 'sum' or 'mean', got {reduction!r}")
    n = check_free(initial)
    if check_free(final) != n:
        raise ValueError(f"parameter_consistency: {check_free(final)} optimised Gaussians, {n} initial ones")
    total = initial["means"].sum() * 0.0
    for name in FREE_FIELDS:
        a, b = final[name], initial[name]
        if name == "quats":
            a = torch.nn.functional.normalize(a, dim=-1)
            b = torch.nn.functional.normalize(b, dim=-1)
        total = total + (a - b).abs().sum()
    return total / max(n, 1) if reduction == "mean" else total
