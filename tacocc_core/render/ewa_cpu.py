"""A differentiable EWA splatting rasteriser in plain PyTorch, for CPUs (gsplat needs CUDA).

It follows gsplat 1.5.3's "classic" 3DGS pipeline step for step, so that the two agree to float precision:

1. Covariance from a (w, x, y, z) quaternion (normalised) and scales: Sigma = R S S^T R^T.
2. EWA projection into a pinhole camera: Sigma_2d = J W Sigma W^T J^T, with the perspective Jacobian J
   evaluated at the centre whose x/z and y/z are clamped to 1.3x the image half-extent; a 0.3 px^2 low-pass
   dilation is added to the diagonal (no opacity compensation). Gaussians with depth below the near plane
   (0.01 m) or above the far plane, with opacity below 1/255, or whose 2D box misses the image are culled.
3. Per pixel (centre at +0.5), front to back in the order of camera depth:
   alpha = min(0.999, o * exp(-0.5 d^T Sigma_2d^-1 d)), Gaussians with alpha < 1/255 are skipped, and the
   pixel stops before the Gaussian that would bring the transmittance to 1e-4 or below.

Compositing (step 3) is `tile_composite.py`, which has its own backward pass; its reference twin is the same
math left to autograd.

Why our own: gsplat's pure-PyTorch reference functions are private and still call its CUDA kernels, and no
maintained CPU splatting library fits (docs/design/dependencies.md). The slow float64 per-pixel twin is
`tacocc_core/reference/ewa_cpu.py`.

Memory stays bounded: Gaussians are binned into square tiles by their opacity-aware 2D box (as gsplat's
tile intersection does), and tiles are composited in chunks of at most `max_elements` (pixel, Gaussian)
pairs, except that a single tile is never split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tacocc_core.render.tile_composite import ALPHA_MIN, tile_composite

NEAR_PLANE = 0.01  # metres
FAR_PLANE = 1e10  # metres
EPS2D = 0.3  # px^2 added to the diagonal of each 2D covariance
EXTEND_MAX = 3.33  # box half-size in standard deviations, before the opacity-aware tightening


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), any non-zero length -> (N, 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def quat_scale_to_covar(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z) + (N, 3) scales (metres) -> (N, 3, 3) covariances (metres^2)."""
    m = quat_to_rotmat(quats) * scales[:, None, :]
    return m @ m.transpose(-1, -2)


@dataclass
class Projection:
    """Gaussians as seen by V cameras (entries of culled Gaussians are meaningless).

    Args:
        means2d: (V, N, 2) pixel coordinates (column, row) of the centres.
        conics: (V, N, 3) entries (xx, xy, yy) of the inverse dilated 2D covariance.
        depths: (V, N) camera-frame z of the centres, metres.
        radii: (V, N, 2) int64 half-extent (x, y) in pixels of the box outside which alpha < 1/255.
        visible: (V, N) bool, not culled.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor
    visible: torch.Tensor


def project_ewa(
    means: torch.Tensor,
    covars: torch.Tensor,
    opacities: torch.Tensor,
    world2cam: torch.Tensor,
    cam2img: torch.Tensor,
    width: int,
    height: int,
    eps2d: float = EPS2D,
    near_plane: float = NEAR_PLANE,
    far_plane: float = FAR_PLANE,
) -> Projection:
    """EWA-project N Gaussians into V pinhole cameras (step 2 of the module docstring).

    Args:
        means: (N, 3) centres, world frame.
        covars: (N, 3, 3) world-frame covariances.
        opacities: (N,) in [0, 1], used for culling and the opacity-aware box only.
        world2cam: (V, 4, 4) into the camera frame (x right, y down, z forward).
        cam2img: (V, 3, 3) intrinsics (fx, fy, cx, cy are used; skew is ignored, as gsplat does).
        width: image width in pixels.
        height: image height in pixels.
        eps2d: low-pass dilation added to the 2D covariance diagonal, px^2.
        near_plane: Gaussians nearer than this (camera z, metres) are culled.
        far_plane: Gaussians farther than this are culled.
    """
    rot, trans = world2cam[:, :3, :3], world2cam[:, :3, 3]
    mean_c = torch.einsum("vij,nj->vni", rot, means) + trans[:, None, :]
    cov_c = rot[:, None] @ covars[None] @ rot.transpose(-1, -2)[:, None]
    x, y, z = mean_c.unbind(-1)
    visible = (z >= near_plane) & (z <= far_plane)
    z = torch.where(visible, z, torch.ones_like(z))  # keeps culled entries finite (and their gradients)

    fx, fy = cam2img[:, 0, 0, None], cam2img[:, 1, 1, None]
    cx, cy = cam2img[:, 0, 2, None], cam2img[:, 1, 2, None]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_x = ((width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x)
    lim_y = ((height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y)
    tx = z * torch.minimum(lim_x[0], torch.maximum(-lim_x[1], x / z))
    ty = z * torch.minimum(lim_y[0], torch.maximum(-lim_y[1], y / z))
    zero = torch.zeros_like(z)
    jac = torch.stack(
        [
            torch.stack([fx / z, zero, -fx * tx / (z * z)], dim=-1),
            torch.stack([zero, fy / z, -fy * ty / (z * z)], dim=-1),
        ],
        dim=-2,
    )  # (V, N, 2, 3)
    cov2d = jac @ cov_c @ jac.transpose(-1, -2)
    a = cov2d[..., 0, 0] + eps2d
    b = cov2d[..., 0, 1]
    c = cov2d[..., 1, 1] + eps2d
    det = a * c - b * b
    visible = visible & (det > 0)
    det = torch.where(visible, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    with torch.no_grad():
        opac = opacities.detach().expand_as(z)
        visible = visible & (opac >= ALPHA_MIN)  # out of place: `where` above saved the old mask
        extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_MIN) / ALPHA_MIN)).clamp_max(EXTEND_MAX)
        radii = torch.stack(
            [torch.ceil(extend * a.clamp_min(0).sqrt()), torch.ceil(extend * c.clamp_min(0).sqrt())], dim=-1
        )
        visible = visible & (radii > 0).any(dim=-1)
        lo, hi = means2d - radii, means2d + radii
        visible = visible & (hi[..., 0] > 0) & (lo[..., 0] < width) & (hi[..., 1] > 0) & (lo[..., 1] < height)
        radii = torch.where(visible[..., None], radii, torch.zeros_like(radii)).long()
    return Projection(means2d, conics, mean_c[..., 2], radii, visible)


def composite(
    proj: Projection,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    width: int,
    height: int,
    tile_size: int = 8,
    max_elements: int = 1 << 20,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back alpha compositing of projected Gaussians (step 3 of the module docstring).

    Args:
        proj: the projection into V cameras of N Gaussians.
        colors: (V, N, C) per-view colours (any channels, e.g. RGB + depth).
        opacities: (N,) in [0, 1].
        width: image width in pixels.
        height: image height in pixels.
        tile_size: edge of the square tiles Gaussians are binned into, pixels.
        max_elements: budget of (pixel, Gaussian) pairs composited at once.

    Returns:
        render: (V, H, W, C) sum of colour x weight (no background); alpha: (V, H, W) accumulated opacity.
    """
    v_count, n = proj.visible.shape
    ch = colors.shape[-1]
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    n_tiles = v_count * tiles_x * tiles_y
    pix = tile_size * tile_size
    dtype, device = colors.dtype, colors.device

    vis_v, vis_n = proj.visible.nonzero(as_tuple=True)  # the visible (view, Gaussian) pairs, m of them
    m = vis_v.numel()
    out = torch.zeros(n_tiles, pix, ch + 1, dtype=dtype, device=device)
    if m > 0:
        tile_ids, order, offsets, counts = _bin_tiles(proj, vis_v, vis_n, tile_size, tiles_x, tiles_y, n_tiles)
        xy = proj.means2d[vis_v, vis_n]  # (m, 2)
        conic = proj.conics[vis_v, vis_n]  # (m, 3)
        opac = opacities[vis_n]  # (m,)
        feats = torch.cat([colors[vis_v, vis_n], torch.ones_like(opac)[:, None]], dim=-1)  # (m, C + 1)
        done_tiles, done_vals = [], []
        for chunk in _chunks(tile_ids, counts, pix, max_elements):
            k = int(counts[chunk].max())
            slot = torch.arange(k, device=device)
            valid = slot[None, :] < counts[chunk, None]  # (t, K)
            gid = order[(offsets[chunk, None] + slot[None, :]).clamp_max(order.numel() - 1)]  # (t, K) into m
            centres = _pixel_centres(chunk, tile_size, tiles_x, tiles_y, dtype, device)  # (t, P, 2)
            done_vals.append(tile_composite(xy[gid], conic[gid], opac[gid], feats[gid], centres, valid))
            done_tiles.append(chunk)
        out = out.index_copy(0, torch.cat(done_tiles), torch.cat(done_vals))
    if not out.requires_grad:
        # Nothing visible: keep the (black) image a function of the inputs so that a loss on it can still
        # be back-propagated (with zero gradients) instead of failing in the training step.
        out = out + 0.0 * (colors.sum() + opacities.sum() + proj.means2d.sum() + proj.conics.sum())
    image = out.reshape(v_count, tiles_y, tiles_x, tile_size, tile_size, ch + 1)
    image = image.permute(0, 1, 3, 2, 4, 5).reshape(v_count, tiles_y * tile_size, tiles_x * tile_size, ch + 1)
    image = image[:, :height, :width]
    return image[..., :ch], image[..., ch]


def rasterize_ewa(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    world2cam: torch.Tensor,
    cam2img: torch.Tensor,
    width: int,
    height: int,
    tile_size: int = 8,
    max_elements: int = 1 << 20,
) -> tuple[torch.Tensor, torch.Tensor, Projection]:
    """Render N Gaussians into V cameras: projection then compositing; differentiable in every float input.

    Args:
        means: (N, 3) world frame, metres.
        quats: (N, 4) rotations (w, x, y, z).
        scales: (N, 3) metres.
        opacities: (N,) in [0, 1].
        colors: (V, N, C) per-view colours.
        world2cam: (V, 4, 4) world to camera.
        cam2img: (V, 3, 3) intrinsics.
        width: image width in pixels.
        height: image height in pixels.
        tile_size: see `composite`.
        max_elements: see `composite`.

    Returns:
        render (V, H, W, C), alpha (V, H, W), and the projection (2D means, radii, visibility).
    """
    covars = quat_scale_to_covar(quats, scales)
    proj = project_ewa(means, covars, opacities, world2cam, cam2img, width, height)
    render, alpha = composite(proj, colors, opacities, width, height, tile_size, max_elements)
    return render, alpha, proj


def _bin_tiles(proj, vis_v, vis_n, tile_size, tiles_x, tiles_y, n_tiles):
    """Intersections of visible Gaussians with tiles, sorted by (tile, depth).

    Returns (non-empty tile ids, order (I,) index into the visible list, offsets (n_tiles,), counts (n_tiles,)).
    """
    with torch.no_grad():
        xy = proj.means2d[vis_v, vis_n].detach()
        rad = proj.radii[vis_v, vis_n].to(xy.dtype)
        lo = torch.floor((xy - rad) / tile_size).long()
        hi = torch.ceil((xy + rad) / tile_size).long()
        lo[:, 0].clamp_(0, tiles_x), hi[:, 0].clamp_(0, tiles_x)
        lo[:, 1].clamp_(0, tiles_y), hi[:, 1].clamp_(0, tiles_y)
        span = (hi - lo).clamp_min(0)
        per = span[:, 0] * span[:, 1]
        m = xy.shape[0]
        owner = torch.repeat_interleave(torch.arange(m, device=xy.device), per)
        local = torch.arange(owner.numel(), device=xy.device) - torch.repeat_interleave(torch.cumsum(per, 0) - per, per)
        tx = lo[owner, 0] + local % span[owner, 0]
        ty = lo[owner, 1] + local // span[owner, 0]
        tile = vis_v[owner] * (tiles_x * tiles_y) + ty * tiles_x + tx
        rank = torch.empty(m, dtype=torch.long, device=xy.device)
        rank[torch.argsort(proj.depths[vis_v, vis_n].detach(), stable=True)] = torch.arange(m, device=xy.device)
        key = tile * m + rank[owner]
        order = owner[torch.argsort(key)]
        counts = torch.bincount(tile, minlength=n_tiles)
        offsets = torch.cumsum(counts, 0) - counts
        tile_ids = counts.nonzero(as_tuple=True)[0]
    return tile_ids, order, offsets, counts


def _chunks(tile_ids: torch.Tensor, counts: torch.Tensor, pix: int, max_elements: int):
    """Split non-empty tiles into groups whose padded (tiles x pixels x max count) stays within budget.

    Tiles are taken in order of their Gaussian count, so that each group pads to a count close to its own.
    """
    tile_ids = tile_ids[torch.argsort(counts[tile_ids], stable=True)]
    sizes = counts[tile_ids].tolist()
    start, widest = 0, 0
    for i, size in enumerate(sizes):
        widest_next = max(widest, size)
        if i > start and (i + 1 - start) * pix * widest_next > max_elements:
            yield tile_ids[start:i]
            start, widest_next = i, size
        widest = widest_next
    if sizes:
        yield tile_ids[start:]


def _pixel_centres(tiles, tile_size, tiles_x, tiles_y, dtype, device):
    """(t,) global tile ids -> (t, tile_size^2, 2) pixel-centre coordinates (column, row), row-major in the tile."""
    local = tiles % (tiles_x * tiles_y)
    ty, tx = local // tiles_x, local % tiles_x
    r = torch.arange(tile_size, device=device, dtype=dtype) + 0.5
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    u = tx[:, None].to(dtype) * tile_size + cols.reshape(1, -1)
    v = ty[:, None].to(dtype) * tile_size + rows.reshape(1, -1)
    return torch.stack([u, v], dim=-1)
