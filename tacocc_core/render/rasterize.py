"""Render Gaussians into the surround cameras: gsplat on CUDA, our PyTorch EWA compositor elsewhere.

Both backends get the same inputs: temporally weighted opacities, view-dependent SH colours
max(SH + 0.5, 0), normalised quaternions, a 0.3 px^2 dilation and a 0.01 m near plane, and both return
RGB (no background), expected depth (camera z weighted by the blending weights, divided by alpha; 0 where
nothing was hit) and alpha.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from tacocc_core.render.ewa_cpu import EPS2D, FAR_PLANE, NEAR_PLANE, rasterize_ewa
from tacocc_core.render.gaussians import Gaussians
from tacocc_core.render.sh import sh_to_rgb
from tacocc_core.render.temporal import temporal_opacities

log = logging.getLogger(__name__)

Backend = Literal["auto", "gsplat", "torch"]


def gsplat_available() -> bool:
    """True when CUDA is usable and gsplat can be imported (it is CUDA-only and not needed elsewhere)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def rigid_inverse(a2b: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) rigid transforms a2b -> b2a, using the transposed rotation."""
    rot_t = a2b[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(a2b)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -(rot_t @ a2b[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def scale_intrinsics(cam2img: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """(..., 3, 3) intrinsics of an image -> those of the same image resized by (scale_x, scale_y).

    Pixel i covers [i, i + 1) in both images, so continuous coordinates scale exactly: u' = u * scale_x.
    """
    factor = torch.tensor([scale_x, scale_y, 1.0], dtype=cam2img.dtype, device=cam2img.device)
    return cam2img * factor[:, None]


def render_views(
    gaussians: Gaussians,
    cam2lidar: torch.Tensor,
    cam2img: torch.Tensor,
    width: int,
    height: int,
    t: float | torch.Tensor | None = None,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render the Gaussians of one frame into V cameras.

    Args:
        gaussians: N Gaussians, means in the LiDAR frame.
        cam2lidar: (V, 4, 4) camera -> LiDAR (camera frame: x right, y down, z forward).
        cam2img: (V, 3, 3) intrinsics of the rendered image size (scale them with the image).
        width: rendered width in pixels.
        height: rendered height in pixels.
        t: render time in seconds on the clock of `mu_t`; None renders without temporal weighting.
        backend: "gsplat" (CUDA), "torch" (our compositor, any device), "auto" = gsplat when available.

    Returns:
        rgb: (V, H, W, 3); depth: (V, H, W) expected camera z, metres; alpha: (V, H, W).
    """
    views = _check_cameras(cam2lidar, cam2img, width, height)
    if backend == "auto":
        backend = "gsplat" if gaussians.device.type == "cuda" and gsplat_available() else "torch"
    if backend not in ("gsplat", "torch"):
        raise ValueError(f"render_views: backend must be 'auto', 'gsplat' or 'torch', got {backend!r}")
    if backend == "gsplat" and not (gaussians.device.type == "cuda" and gsplat_available()):
        raise ValueError(
            f"render_views: backend 'gsplat' needs CUDA tensors and the gsplat package; Gaussians are on "
            f"{gaussians.device}, CUDA available: {torch.cuda.is_available()} (use backend='torch' or 'auto')"
        )
    dtype = gaussians.means.dtype
    cam2lidar, cam2img = cam2lidar.to(gaussians.device, dtype), cam2img.to(gaussians.device, dtype)
    opacities = gaussians.opacities
    if t is not None:
        opacities = temporal_opacities(opacities, t, gaussians.mu_t, gaussians.sigma_t)
    quats = torch.nn.functional.normalize(gaussians.quats, dim=-1)
    world2cam = rigid_inverse(cam2lidar)
    if gaussians.num == 0:
        log.debug("render_views: no Gaussians, black images")
        zero = 0.0 * (opacities.sum() + gaussians.sh.sum())  # keeps a loss on the result back-propagable
        rgb = torch.zeros(views, height, width, 3, dtype=dtype, device=gaussians.device) + zero
        return rgb, rgb[..., 0].clone(), rgb[..., 0].clone()
    if backend == "gsplat":
        return _render_gsplat(gaussians, quats, opacities, world2cam, cam2img, width, height)
    colors = sh_to_rgb(gaussians.sh, gaussians.means, cam2lidar[:, :3, 3])  # (V, N, 3)
    depth_c = torch.einsum("vj,nj->vn", world2cam[:, 2, :3], gaussians.means) + world2cam[:, 2, 3, None]
    feats = torch.cat([colors, depth_c[..., None]], dim=-1)
    render, alpha, _ = rasterize_ewa(
        gaussians.means, quats, gaussians.scales, opacities, feats, world2cam, cam2img, width, height
    )
    depth = render[..., 3] / alpha.clamp_min(1e-10)
    return render[..., :3], depth, alpha


def _render_gsplat(gaussians, quats, opacities, world2cam, cam2img, width, height):
    """gsplat.rasterization with the settings that `ewa_cpu` mirrors (classic mode, RGB + expected depth)."""
    import gsplat  # CUDA only: imported here so that CPU machines never need it

    render, alpha, _ = gsplat.rasterization(
        means=gaussians.means,
        quats=quats,
        scales=gaussians.scales,
        opacities=opacities,
        colors=gaussians.sh,
        viewmats=world2cam,
        Ks=cam2img,
        width=width,
        height=height,
        sh_degree=gaussians.sh_degree,
        near_plane=NEAR_PLANE,
        far_plane=FAR_PLANE,
        eps2d=EPS2D,
        packed=False,
        render_mode="RGB+ED",
        rasterize_mode="classic",
    )
    return render[..., :3], render[..., 3], alpha[..., 0]


def _check_cameras(cam2lidar: torch.Tensor, cam2img: torch.Tensor, width: int, height: int) -> int:
    if cam2lidar.ndim != 3 or tuple(cam2lidar.shape[1:]) != (4, 4):
        raise ValueError(f"render_views: cam2lidar must be (V, 4, 4), got {tuple(cam2lidar.shape)}")
    views = cam2lidar.shape[0]
    if tuple(cam2img.shape) != (views, 3, 3):
        raise ValueError(
            f"render_views: cam2img must be ({views}, 3, 3) to match cam2lidar, got {tuple(cam2img.shape)}"
        )
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"render_views: image size must be positive, got width={width} height={height}")
    return views
