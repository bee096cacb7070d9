"""Dual-source geometric anchors (paper Sec. III-B, "DGA"): where the Gaussians of one frame start.

Two sources, both in the LiDAR frame of the frame being rendered:
- LiDAR anchors: points of the sweep inside the grid, randomly subsampled to at most `max_count`. They
  carry precise geometry, so the parameter net bounds their offsets tightly.
- voxel anchors: the centroids of the "non-zero" voxels of the temporally smoothed volume F~_IL. They fill
  what the sparse LiDAR misses. F~_IL out of the ConvLSTM is dense (every voxel carries some value), so
  "non-zero" needs a reading (config `renderer.voxel_anchor_source`). The paper's words, max_c |F~_IL[c]|
  above a threshold ranked by feature norm (`voxel_anchors`), are the "feature_norm" source: on a dense
  volume it selects every voxel and keeps the highest-norm ones, free space included. The "predicted"
  source (`predicted_voxel_mask`) takes the voxels that the coarse occupancy head calls occupied (argmax !=
  empty); when more qualify than `max_count`, those with the highest occupancy score 1 - p(empty) are kept
  (`masked_voxel_anchors`). For a cubic voxel the centroid is the voxel centre.

`sample_volume` reads the volume's features at arbitrary anchor positions (trilinear, through
`torch.nn.functional.grid_sample`); its slow per-point twin lives in the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tacocc_core.geometry import GridSpec


def _grid_tensors(grid: GridSpec, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lower = torch.tensor(grid.lower, dtype=like.dtype, device=like.device)
    size = torch.tensor(grid.voxel_size, dtype=like.dtype, device=like.device)
    shape = torch.tensor(grid.shape, dtype=like.dtype, device=like.device)
    return lower, size, shape


def inside_grid(points: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """(P,) bool: finite points (first three columns, metres) strictly inside the grid's box."""
    lower, size, shape = _grid_tensors(grid, points)
    xyz = points[:, :3]
    upper = lower + size * shape
    return torch.isfinite(xyz).all(dim=1) & (xyz >= lower).all(dim=1) & (xyz < upper).all(dim=1)


def lidar_anchors(
    points: torch.Tensor, grid: GridSpec, max_count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """At most `max_count` LiDAR points inside the grid, as anchor centres.

    Args:
        points: (P, 3+) LiDAR points, LiDAR frame, metres (extra columns ignored).
        grid: the grid whose box the anchors must lie in (the features exist only there).
        max_count: cap; a uniform random subset (without replacement) is drawn when more points qualify.
        generator: random source of the subset (None: torch's default generator).

    Returns:
        (M, 3) anchors, M <= max_count, dtype and device of `points`.
    """
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"lidar_anchors: points must be (P, 3+), got {tuple(points.shape)}")
    if max_count < 0:
        raise ValueError(f"lidar_anchors: max_count must be >= 0, got {max_count}")
    xyz = points[inside_grid(points, grid), :3]
    if xyz.shape[0] > max_count:
        pick = torch.randperm(xyz.shape[0], generator=generator, device="cpu")[:max_count]
        xyz = xyz[pick.to(xyz.device)]
    return xyz


def masked_voxel_anchors(
    candidates: torch.Tensor, score: torch.Tensor, grid: GridSpec, max_count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of the candidate voxels, the `max_count` highest-scoring ones when more qualify.

    Args:
        candidates: (X, Y, Z) bool voxels that may hold an anchor, on `grid` (LiDAR frame).
        score: (X, Y, Z) ranking (higher kept first when capped); any float dtype.
        grid: the volume's grid.
        max_count: cap (>= 0).

    Returns:
        anchors: (M, 3) voxel centres, metres, dtype float32 on the device of `candidates`, or the dtype of
            `score` when it is a floating type;
        index: (M, 3) int64 voxel indices (i, j, k), in increasing flat order.
    """
    shape = tuple(grid.shape)
    if tuple(candidates.shape) != shape or tuple(score.shape) != shape:
        raise ValueError(
            f"masked_voxel_anchors: candidates and score must be {shape}, got {tuple(candidates.shape)} and "
            f"{tuple(score.shape)}"
        )
    if max_count < 0:
        raise ValueError(f"masked_voxel_anchors: max_count must be >= 0, got {max_count}")
    with torch.no_grad():
        chosen = candidates.detach().flatten().bool().nonzero(as_tuple=True)[0]
        if chosen.numel() > max_count:
            keep = torch.topk(score.detach().flatten()[chosen].float(), max_count, sorted=False).indices
            chosen = chosen[keep].sort().values
        _, ny, nz = shape
        index = torch.stack([chosen // (ny * nz), (chosen // nz) % ny, chosen % nz], dim=1)
    dtype = score.dtype if score.is_floating_point() else torch.float32
    lower, size, _ = _grid_tensors(grid, score.new_zeros(0, dtype=dtype))
    return lower + (index.to(dtype) + 0.5) * size, index


def voxel_anchors(
    features: torch.Tensor, grid: GridSpec, max_count: int, threshold: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids of the voxels of a feature volume with max_c |features[c]| > threshold (the "feature_norm" source).

    Args:
        features: (C, X, Y, Z) F~_IL of one frame on `grid` (LiDAR frame).
        grid: the volume's grid.
        max_count: cap; the voxels with the largest L2 feature norm are kept when more qualify.
        threshold: a voxel is non-zero when max_c |features[c]| > threshold.

    Returns:
        anchors: (M, 3) voxel centres, metres, dtype and device of `features`;
        index: (M, 3) int64 voxel indices (i, j, k).
    """
    if features.ndim != 4 or tuple(features.shape[1:]) != tuple(grid.shape):
        raise ValueError(
            f"voxel_anchors: features must be (C, {', '.join(map(str, grid.shape))}), got {tuple(features.shape)}"
        )
    if max_count < 0:
        raise ValueError(f"voxel_anchors: max_count must be >= 0, got {max_count}")
    with torch.no_grad():
        f = features.detach()
        candidates = f.abs().amax(dim=0) > threshold
        norms = f.norm(dim=0)
    return masked_voxel_anchors(candidates, norms, grid, max_count)


def predicted_voxel_mask(coarse_logits: torch.Tensor | None, empty_class: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate voxels and their ranking score for the "predicted" source: the coarse head's occupied voxels.

    Args:
        coarse_logits: (K, X, Y, Z) coarse-head logits of the frame.
        empty_class: index of the empty class in the logits.

    Returns:
        candidates: (X, Y, Z) bool, argmax != empty; score: (X, Y, Z) float, 1 - p(empty).
    """
    if coarse_logits is None or coarse_logits.ndim != 4:
        shape = None if coarse_logits is None else tuple(coarse_logits.shape)
        raise ValueError(f"predicted_voxel_mask: needs (K, X, Y, Z) coarse logits, got {shape}")
    with torch.no_grad():
        logits = coarse_logits.detach().float()
        score = 1.0 - torch.softmax(logits, dim=0)[empty_class]
        return logits.argmax(dim=0) != empty_class, score


def sample_volume(volume: torch.Tensor, points: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """Trilinear features at metric points; differentiable in `volume`.

    Voxel values sit at the voxel centres; between the outermost centres and the grid's faces (and
    beyond) the border value is used.

    Args:
        volume: (C, X, Y, Z) on `grid`, X along the LiDAR x axis.
        points: (N, 3) metres, the grid's frame.
        grid: the volume's grid.

    Returns:
        (N, C) features.
    """
    if volume.ndim != 4 or tuple(volume.shape[1:]) != tuple(grid.shape):
        raise ValueError(
            f"sample_volume: volume must be (C, {', '.join(map(str, grid.shape))}), got {tuple(volume.shape)}"
        )
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"sample_volume: points must be (N, 3), got {tuple(points.shape)}")
    lower, size, shape = _grid_tensors(grid, points)
    # align_corners=False: -1 / +1 are the outer faces of the first / last voxel.
    normalised = 2.0 * (points - lower) / (size * shape) - 1.0
    # grid_sample's last dim is (W, H, D) = our (Z, Y, X).
    coords = normalised.flip(-1).to(volume.dtype).reshape(1, -1, 1, 1, 3)
    out = F.grid_sample(volume[None], coords, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(volume.shape[0], -1).T
