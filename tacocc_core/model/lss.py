"""Lift-splat view transform (Philion & Fidler, ECCV 2020): image features -> voxel volume.

Each feature-map cell predicts a distribution over depth bins and a context vector; their outer
product is placed at the cell's frustum points (through the intrinsics and camera->LiDAR
extrinsics) and sum-pooled into the voxels of the grid by one `index_add_` over channel rows, with no
loop over points or cameras.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tacocc_core.config import ModelConfig
from tacocc_core.geometry import GridSpec
from tacocc_core.model.grids import coarse_grid


def depth_bin_centers(depth_bins: tuple[float, float, float]) -> torch.Tensor:
    """(D,) float32 metres: bin i covers [min + i * step, min + (i + 1) * step), centre at its middle."""
    lo, hi, step = depth_bins
    n = round((hi - lo) / step)
    if n < 1:
        raise ValueError(f"view_transform.depth_bins: (min, max, step) = {depth_bins} gives no bin")
    return lo + (torch.arange(n, dtype=torch.float32) + 0.5) * step


def feature_pixels(feat_hw: tuple[int, int], image_hw: tuple[int, int]) -> torch.Tensor:
    """(h, w, 2) float32 image pixel coordinates (u, v) of the centres of an h x w feature map's cells."""
    (h, w), (ih, iw) = feat_hw, image_hw
    v = (torch.arange(h, dtype=torch.float32) + 0.5) * (ih / h) - 0.5
    u = (torch.arange(w, dtype=torch.float32) + 0.5) * (iw / w) - 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def frustum_points(
    cam2img: torch.Tensor, cam2lidar: torch.Tensor, pixels: torch.Tensor, depths: torch.Tensor
) -> torch.Tensor:
    """Frustum points of every camera in the LiDAR frame.

    Args:
        cam2img: (B, V, 3, 3) intrinsics of the network-size images.
        cam2lidar: (B, V, 4, 4) camera -> LiDAR.
        pixels: (h, w, 2) pixel coordinates (u, v) of the feature cells.
        depths: (D,) metres along the optical axis.

    Returns:
        (B, V, D, h, w, 3) float32, LiDAR frame, metres. Always computed in float32, also under autocast.
    """
    with torch.autocast(cam2img.device.type, enabled=False):
        return _frustum_points_fp32(cam2img.float(), cam2lidar.float(), pixels.float(), depths.float())


def _frustum_points_fp32(
    cam2img: torch.Tensor, cam2lidar: torch.Tensor, pixels: torch.Tensor, depths: torch.Tensor
) -> torch.Tensor:
    ones = torch.ones_like(pixels[..., :1])
    rays = torch.cat([pixels, ones], dim=-1).to(cam2img.device)  # (h, w, 3) homogeneous pixels
    inv_k = torch.linalg.inv(cam2img)  # (B, V, 3, 3)
    dirs = torch.einsum("bvij,hwj->bvhwi", inv_k, rays)  # camera frame at depth 1
    cam = dirs[:, :, None] * depths.to(cam2img.device).view(1, 1, -1, 1, 1, 1)  # (B, V, D, h, w, 3)
    rot, trans = cam2lidar[:, :, :3, :3], cam2lidar[:, :, :3, 3]
    return torch.einsum("bvij,bvdhwj->bvdhwi", rot, cam) + trans[:, :, None, None, None, :]


def voxel_pool(
    xyz: torch.Tensor, batch: torch.Tensor, feats: torch.Tensor, grid: GridSpec, batch_size: int
) -> torch.Tensor:
    """Sum features of points into the voxels that contain them: `pool_into_voxels` at `voxel_indices`.

    Args:
        xyz: (N, 3) metres, grid frame.
        batch: (N,) int64 sample index of each point.
        feats: (C, N) features, one row per channel: the sums run along the rows (CPU `index_add_` along the
            last axis adds each voxel's points in order, several times faster than over (N, C) rows) and
            land in the (C, B, X, Y, Z) order of the output.
        grid: the voxel grid.
        batch_size: B.

    Returns:
        (B, C, X, Y, Z) float32 volume; points outside the grid or non-finite are dropped.
    """
    return pool_into_voxels(feats, *voxel_indices(xyz, batch, grid), grid, batch_size)


def voxel_indices(xyz: torch.Tensor, batch: torch.Tensor, grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept (K,) int64: the points inside the grid, finite; flat (K,) int64: their voxel in (B, X, Y, Z) order)."""
    nx, ny, nz = grid.shape
    lower = torch.tensor(grid.lower, dtype=torch.float32, device=xyz.device)
    size = torch.tensor(grid.voxel_size, dtype=torch.float32, device=xyz.device)
    shape = torch.tensor(grid.shape, device=xyz.device)
    idx = torch.floor((xyz.float() - lower) / size)
    inside = torch.isfinite(idx).all(dim=1)
    idx = torch.where(inside[:, None], idx, torch.zeros_like(idx)).long()
    inside &= ((idx >= 0) & (idx < shape)).all(dim=1)
    kept = inside.nonzero()[:, 0]
    flat = ((batch * nx + idx[:, 0]) * ny + idx[:, 1]) * nz + idx[:, 2]
    return kept, flat[kept]


def pool_into_voxels(
    feats: torch.Tensor, kept: torch.Tensor, flat: torch.Tensor, grid: GridSpec, batch_size: int
) -> torch.Tensor:
    """(C, N) features of points -> (B, C, X, Y, Z) float32 sums over the `voxel_indices` of the points."""
    nx, ny, nz = grid.shape
    c = feats.shape[0]
    out = torch.zeros(c, batch_size * nx * ny * nz, dtype=torch.float32, device=feats.device)
    out.index_add_(1, flat, feats.index_select(1, kept).float())
    return out.view(c, batch_size, nx, ny, nz).transpose(0, 1).contiguous()  # a view when B = 1


def lidar_depth_target(
    points: torch.Tensor,
    points_batch: torch.Tensor,
    cam2img: torch.Tensor,
    cam2lidar: torch.Tensor,
    feat_hw: tuple[int, int],
    image_hw: tuple[int, int],
    depth_bins: tuple[float, float, float],
) -> torch.Tensor:
    """Depth-bin targets from LiDAR points projected into each camera's feature map.

    Args:
        points: (P, 3+) LiDAR frame, metres.
        points_batch: (P,) int64 sample index.
        cam2img: (B, V, 3, 3) intrinsics of the network-size images.
        cam2lidar: (B, V, 4, 4) camera -> LiDAR.
        feat_hw: (h, w) of the feature map.
        image_hw: (H, W) of the images.
        depth_bins: (min, max, step) metres.

    Returns:
        (B, V, h, w) int64 bin of the nearest point in each feature cell, -1 where there is none or
        it falls outside the bins. Computed in float32, also under autocast.
    """
    with torch.autocast(cam2img.device.type, enabled=False):
        return _lidar_depth_target_fp32(
            points[:, :3].float(), points_batch, cam2img.float(), cam2lidar.float(), feat_hw, image_hw, depth_bins
        )


def _lidar_depth_target_fp32(
    points: torch.Tensor,
    points_batch: torch.Tensor,
    cam2img: torch.Tensor,
    cam2lidar: torch.Tensor,
    feat_hw: tuple[int, int],
    image_hw: tuple[int, int],
    depth_bins: tuple[float, float, float],
) -> torch.Tensor:
    b, v = cam2img.shape[:2]
    (h, w), (ih, iw) = feat_hw, image_hw
    lo, _, step = depth_bins
    n_bins = len(depth_bin_centers(depth_bins))
    dev = cam2img.device
    lidar2cam = torch.linalg.inv(cam2lidar.float())[points_batch]  # (P, V, 4, 4)
    xyz = points[:, :3].float()
    cam = torch.einsum("pvij,pj->pvi", lidar2cam[..., :3, :3], xyz) + lidar2cam[..., :3, 3]
    depth = cam[..., 2]
    pix = torch.einsum("pvij,pvj->pvi", cam2img.float()[points_batch], cam)
    uv = pix[..., :2] / depth.clamp(min=1e-6)[..., None]
    col = torch.floor((uv[..., 0] + 0.5) * (w / iw)).long()
    row = torch.floor((uv[..., 1] + 0.5) * (h / ih)).long()
    ok = (depth > 1e-3) & (col >= 0) & (col < w) & (row >= 0) & (row < h) & torch.isfinite(depth)
    cams = torch.arange(v, device=dev).expand_as(depth)
    flat = ((points_batch[:, None] * v + cams) * h + row) * w + col
    nearest = torch.full((b * v * h * w,), float("inf"), device=dev)
    nearest.scatter_reduce_(0, flat[ok], depth[ok], reduce="amin")
    bins = torch.floor((nearest - lo) / step)
    valid = torch.isfinite(bins) & (bins >= 0) & (bins < n_bins)
    return torch.where(valid, bins, torch.full_like(bins, -1)).long().view(b, v, h, w)


def depth_loss(depth_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, V, D, h, w) logits against (B, V, h, w) bins (-1 ignored); 0 with no target."""
    if not (target >= 0).any():
        return depth_logits.sum() * 0.0
    logits = depth_logits.flatten(0, 1).float()
    return F.cross_entropy(logits, target.flatten(0, 1), ignore_index=-1)


class LSSViewTransform(nn.Module):
    """Image features of every camera -> F_I, the image voxel volume on the coarse grid.

    forward(feats (B*V, C_in, h, w), cam2img (B, V, 3, 3), cam2lidar (B, V, 4, 4), camera_valid (B, V),
    image_hw) -> (volume (B, C, X, Y, Z), occupied (B, X, Y, Z) bool: voxels reached by a frustum point
    of a valid camera, depth_logits (B, V, D, h, w)).
    """

    depths: torch.Tensor  # (D,) buffer: the depth bin centres, metres

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.grid = coarse_grid(config)
        self.register_buffer("depths", depth_bin_centers(config.view_transform.depth_bins), persistent=False)
        self.channels = config.view_transform.channels
        d = len(self.depths)
        cin = config.image_backbone.fpn_channels
        self.head = nn.Sequential(
            nn.Conv2d(cin, cin, 3, padding=1, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
            nn.Conv2d(cin, d + self.channels, 1),
        )
        # (sizes and device, cam2img, cam2lidar, kept, flat) of the last calibration seen at inference
        self._frustum_cache: tuple | None = None

    def forward(
        self,
        feats: torch.Tensor,
        cam2img: torch.Tensor,
        cam2lidar: torch.Tensor,
        camera_valid: torch.Tensor,
        image_hw: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, v = cam2img.shape[:2]
        h, w = feats.shape[-2:]
        d = len(self.depths)
        out = self.head(feats).view(b, v, d + self.channels, h, w)
        depth_logits = out[:, :, :d]
        prob = depth_logits.float().softmax(dim=2)
        context = out[:, :, d:].float()
        # (C + 1, B, V, D, h, w): depth probability x context per channel, times the camera's validity (a
        # missing camera adds 0); the last channel is the validity itself, which counts the points of a voxel
        valid = camera_valid.to(prob.dtype)[:, :, None, None, None]  # (B, V, 1, 1, 1)
        per_channel = context.permute(2, 0, 1, 3, 4)[:, :, :, None]  # (C, B, V, 1, h, w)
        if torch.is_grad_enabled() and (prob.requires_grad or per_channel.requires_grad):
            lifted = torch.cat([per_channel * prob[None] * valid, valid.expand(1, b, v, d, h, w)])
        else:  # the same products written straight into one buffer (autograd cannot record out=)
            lifted = prob.new_empty(self.channels + 1, b, v, d, h, w)
            torch.mul(per_channel, prob[None], out=lifted[:-1]).mul_(valid)
            lifted[-1] = valid
        kept, flat = self._frustum_voxels(cam2img, cam2lidar, (h, w), image_hw)
        pooled = pool_into_voxels(lifted.view(self.channels + 1, -1), kept, flat, self.grid, b)
        return pooled[:, :-1], pooled[:, -1] > 0, depth_logits

    def _frustum_voxels(
        self, cam2img: torch.Tensor, cam2lidar: torch.Tensor, feat_hw: tuple[int, int], image_hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`voxel_indices` of the frustum points of every camera, in (B, V, D, h, w) order.

        They depend on the calibration only, which a vehicle's rig keeps from frame to frame: at inference
        (eval mode, no gradient) the answer for the last calibration is kept and reused while `cam2img`,
        `cam2lidar` and the sizes are equal to its own; training computes them every time.
        """
        key = (feat_hw, image_hw, cam2img.device, cam2img.dtype, cam2lidar.dtype, cam2img.shape, cam2lidar.shape)
        cached = self._frustum_cache
        reuse = not self.training and not torch.is_grad_enabled()
        if reuse and cached is not None and cached[0] == key:
            if torch.equal(cached[1], cam2img) and torch.equal(cached[2], cam2lidar):
                return cached[3], cached[4]
        b, v = cam2img.shape[:2]
        h, w = feat_hw
        xyz = frustum_points(cam2img, cam2lidar, feature_pixels(feat_hw, image_hw), self.depths)
        batch = torch.arange(b, device=cam2img.device).view(b, 1, 1, 1, 1).expand(b, v, len(self.depths), h, w)
        kept, flat = voxel_indices(xyz.reshape(-1, 3), batch.reshape(-1), self.grid)
        self._frustum_cache = (key, cam2img.clone(), cam2lidar.clone(), kept, flat) if reuse else None
        return kept, flat
