"""Alpha compositing of the Gaussians of a group of tiles, with a hand-written backward pass.

The CPU rasteriser (`ewa_cpu.py`) composites tiles in chunks: every pixel of a tile against the Gaussians
binned into that tile, front to back. Written as plain tensor operations, autograd keeps about ten
(tiles, pixels, Gaussians) intermediates per chunk and replays a long chain of element-wise kernels
backwards; that chain was most of a renderer training step on a CPU. `tile_composite` computes the same
image with one autograd node: the exponent of every (pixel, Gaussian) pair is one batched matrix product
(a quadratic in the pixel's coordinates with six coefficients per Gaussian), the forward keeps three
(tiles, pixels, Gaussians) tensors, and the backward applies the closed-form derivative of front-to-back
compositing (the one gsplat's CUDA backward evaluates per pixel, here vectorised):

    w_k = a_k T_k s_k,  T_k = prod_{j<k} (1 - a_j),  s_k = [T_k (1 - a_k) > T_min]  (no gradient, as before)
    out = sum_k w_k f_k
    dL/df_k = w_k g,   dL/da_k = s_k T_k (f_k . g) - (sum_{j>k} w_j (f_j . g)) / (1 - a_k)

Its twin `tacocc_core.reference.tile_composite.tile_composite_reference` is the same computation left to
autograd (the unit tests compare images and every gradient).
"""

from __future__ import annotations

import torch

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999  # gsplat's rasterize_to_pixels clamp
TRANSMITTANCE_MIN = 1e-4


def tile_composite(
    xy: torch.Tensor,
    conic: torch.Tensor,
    opacity: torch.Tensor,
    feats: torch.Tensor,
    centres: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    """Composite t tiles of P pixels against their K depth-sorted Gaussians.

    Args:
        xy: (t, K, 2) pixel coordinates (column, row) of the Gaussians' centres.
        conic: (t, K, 3) entries (xx, xy, yy) of the inverse 2D covariances.
        opacity: (t, K) in [0, 1].
        feats: (t, K, C) what is accumulated (colour channels, depth, 1 for alpha).
        centres: (t, P, 2) pixel centres (column, row); no gradient.
        valid: (t, K) bool, False on the padding slots of tiles with fewer than K Gaussians.

    Returns:
        (t, P, C) sum over the Gaussians of feature x weight.
    """
    # The closed-form backward needs the forward's own precision: autocast (bf16 on CUDA) stays outside, and
    # lower-precision inputs are computed in float32.
    dtype = torch.promote_types(xy.dtype, torch.float32)
    with torch.autocast(xy.device.type, enabled=False):
        basis, coef = _quadratic_form(xy.to(dtype), conic.to(dtype), centres.to(dtype))
        return _TileComposite.apply(coef, opacity.to(dtype), feats.to(dtype), basis.detach(), valid)


def _quadratic_form(xy: torch.Tensor, conic: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The exponent sigma_pk = 1/2 d^T Sigma^-1 d (d = centre_k - pixel_p) as one batched matrix product.

    sigma_pk = sum_i basis_pi coef_ik with basis (1, qx, qy, qx^2, qy^2, qx qy) of the pixel and six
    coefficients of the Gaussian; q and the centres are taken relative to each tile's middle so that the
    expansion loses no float32 precision for Gaussians near the tile. Returns basis (t, P, 6), coef (t, 6, K).
    """
    origin = centres.mean(dim=1, keepdim=True)  # (t, 1, 2)
    q = centres - origin
    qx, qy = q[..., 0], q[..., 1]
    basis = torch.stack([torch.ones_like(qx), qx, qy, qx * qx, qy * qy, qx * qy], dim=-1)
    u = xy - origin
    ux, uy = u[..., 0], u[..., 1]
    a, b, c = conic[..., 0], conic[..., 1], conic[..., 2]
    coef = torch.stack(
        [
            0.5 * a * ux * ux + 0.5 * c * uy * uy + b * ux * uy,
            -(a * ux + b * uy),
            -(c * uy + b * ux),
            0.5 * a,
            0.5 * c,
            b,
        ],
        dim=1,
    )
    return basis, coef


class _TileComposite(torch.autograd.Function):
    """(coef (t, 6, K), opacity (t, K), feats (t, K, C), basis (t, P, 6), valid (t, K)) -> (t, P, C)."""

    @staticmethod
    def forward(ctx, coef, opacity, feats, basis, valid):
        sigma = torch.bmm(basis, coef)
        gauss = torch.exp(-sigma)
        raw = opacity[:, None] * gauss
        keep = valid[:, None, :] & (sigma >= 0) & (raw >= ALPHA_MIN)
        alpha = torch.where(keep, raw.clamp_max(ALPHA_MAX), torch.zeros_like(raw))
        t_after = torch.cumprod(1.0 - alpha, dim=-1)
        t_before_kept = torch.cat([torch.ones_like(t_after[..., :1]), t_after[..., :-1]], dim=-1)
        t_before_kept.mul_(t_after > TRANSMITTANCE_MIN)
        ctx.save_for_backward(opacity, feats, basis, gauss, alpha, t_before_kept, keep & (raw <= ALPHA_MAX))
        return torch.bmm(alpha * t_before_kept, feats)

    @staticmethod
    def backward(ctx, grad_out):
        with torch.autocast(grad_out.device.type, enabled=False):  # as the forward ran
            return _TileComposite._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        opacity, feats, basis, gauss, alpha, t_before_kept, passes = ctx.saved_tensors
        weight = alpha * t_before_kept
        grad_feats = torch.bmm(weight.transpose(1, 2), grad_out)
        g_dot_f = torch.bmm(grad_out, feats.transpose(1, 2))  # (t, P, K)
        weighted = weight * g_dot_f
        behind = weighted.sum(-1, keepdim=True) - weighted.cumsum(-1)  # sum over j > k
        grad_raw = (t_before_kept * g_dot_f - behind / (1.0 - alpha)) * passes
        grad_raw_gauss = grad_raw * gauss  # raw = opacity exp(-sigma)
        grad_opacity = grad_raw_gauss.sum(1)
        grad_sigma = grad_raw_gauss * (-opacity[:, None])
        grad_coef = torch.bmm(basis.transpose(1, 2), grad_sigma)
        return grad_coef, grad_opacity, grad_feats, None, None
