"""Photometric loss of the Gaussian renderer: L_rgb = (1 - lambda) L1 + lambda D-SSIM (paper Sec. III-C).

SSIM is pytorch_msssim's (11x11 Gaussian window, sigma 1.5, K = (0.01, 0.03), data range 1), the window of
the 3DGS papers. It returns one SSIM per image, not a per-pixel map, so the sky mask is applied like this:
masked pixels of the rendering are replaced by the target's before SSIM. Windows that lie wholly in the mask
then compare identical patches (SSIM exactly 1, D-SSIM 0) and no gradient reaches masked pixels; windows
that straddle the boundary count with their valid part. The mean D-SSIM is divided by the fraction of valid
pixels, so that a mostly-masked image is not down-weighted. L1 is the mean over valid pixels and channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

SSIM_WINDOW = 11


def photometric_loss(
    rendered: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    dssim_lambda: float = 0.2,
) -> torch.Tensor:
    """Scalar L_rgb over the valid pixels of V views.

    Args:
        rendered: (V, H, W, 3) rendered RGB in [0, 1] (values above 1 are allowed and penalised).
        target: (V, H, W, 3) camera RGB in [0, 1], same size.
        valid: (V, H, W) bool, False on sky and on cameras without an image; None = every pixel.
        dssim_lambda: lambda in [0, 1] (config.renderer.dssim_lambda).

    Returns:
        scalar tensor; 0 (still connected to `rendered`) when no pixel is valid.
    """
    if rendered.ndim != 4 or rendered.shape[-1] != 3:
        raise ValueError(f"photometric_loss: rendered must be (V, H, W, 3), got {tuple(rendered.shape)}")
    if target.shape != rendered.shape:
        raise ValueError(
            f"photometric_loss: target {tuple(target.shape)} differs from rendered {tuple(rendered.shape)}"
        )
    views, height, width, _ = rendered.shape
    if valid is None:
        valid = torch.ones(views, height, width, dtype=torch.bool, device=rendered.device)
    if valid.shape != rendered.shape[:3] or valid.dtype != torch.bool:
        raise ValueError(
            f"photometric_loss: valid must be a bool ({views}, {height}, {width}) mask, got "
            f"{valid.dtype} {tuple(valid.shape)}"
        )
    if not 0.0 <= dssim_lambda <= 1.0:
        raise ValueError(f"photometric_loss: dssim_lambda must be in [0, 1], got {dssim_lambda}")
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(
            f"photometric_loss: images of {height}x{width} px are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} "
            "SSIM window; render larger images"
        )
    target = target.to(rendered.dtype)
    n_valid = valid.sum()
    if int(n_valid) == 0:
        return rendered.sum() * 0.0
    mask = valid[..., None]
    l1 = (rendered - target).abs().masked_fill(~mask, 0.0).sum() / (3 * n_valid)
    if dssim_lambda == 0.0:
        return l1
    filled = torch.where(mask, rendered, target)
    score = ssim(
        filled.permute(0, 3, 1, 2).contiguous(),
        target.permute(0, 3, 1, 2).contiguous(),
        data_range=1.0,
        size_average=True,
        win_size=SSIM_WINDOW,
    )
    dssim = (1.0 - score) / (n_valid / valid.numel())
    return (1.0 - dssim_lambda) * l1 + dssim_lambda * dssim


def resize_target(
    images: torch.Tensor, valid: torch.Tensor | None, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Camera images at the network size -> targets at the render size.

    Args:
        images: (V, 3, H, W) uint8 RGB (the batch layout) or float in [0, 1].
        valid: (V, H, W) bool or None.
        height: rendered height in pixels.
        width: rendered width in pixels.

    Returns:
        (V, height, width, 3) float32 in [0, 1] (area-averaged), and the mask resized by nearest neighbour.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"resize_target: images must be (V, 3, H, W), got {tuple(images.shape)}")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    out_valid = None
    if valid is not None:
        out_valid = F.interpolate(valid[:, None].float(), size=(height, width), mode="nearest")[:, 0] > 0.5
    return x.clamp(0.0, 1.0).permute(0, 2, 3, 1).contiguous(), out_valid
