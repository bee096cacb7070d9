"""Twin of `tacocc_core.render.tile_composite.tile_composite`: the same compositing left to autograd."""

from __future__ import annotations

import torch

from tacocc_core.render.tile_composite import ALPHA_MAX, ALPHA_MIN, TRANSMITTANCE_MIN


def tile_composite_reference(
    xy: torch.Tensor,
    conic: torch.Tensor,
    opacity: torch.Tensor,
    feats: torch.Tensor,
    centres: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    """`tile_composite` left to autograd (same arguments and result)."""
    return torch.einsum("tpk,tkc->tpc", _weights(xy, conic, opacity, centres, valid), feats)


def _weights(xy, conic, opacity, centres, valid):
    """Per (tile, pixel, Gaussian) weights of front-to-back compositing, (t, P, K); plain autograd."""
    d = xy[:, None, :, :] - centres[:, :, None, :]  # (t, P, K, 2)
    dx, dy = d[..., 0], d[..., 1]
    cg = conic[:, None]  # (t, 1, K, 3)
    sigma = 0.5 * (cg[..., 0] * dx * dx + cg[..., 2] * dy * dy) + cg[..., 1] * dx * dy
    alpha = (opacity[:, None] * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    keep = valid[:, None, :] & (sigma >= 0) & (alpha >= ALPHA_MIN)
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    t_after = torch.cumprod(1.0 - alpha, dim=-1)
    t_before = torch.cat([torch.ones_like(t_after[..., :1]), t_after[..., :-1]], dim=-1)
    return alpha * t_before * (t_after > TRANSMITTANCE_MIN)  # stops before the Gaussian that saturates it
