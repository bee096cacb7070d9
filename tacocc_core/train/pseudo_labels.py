"""Label-efficient supervision without voxel annotations: LiDAR geometry, teacher labels, geometry loss.

After the geometry branch and pseudo-label ideas of OccLE: LiDAR free/occupied pseudo-labels, a binary
geometry loss that uses them, and confidence-thresholded labels from a frozen teacher.

LiDAR geometry: every return is the end of a ray from the sensor position at the time of its sweep. The
voxel holding the return is occupied (its class is unknown); every other voxel the ray passes through is
free; voxels no ray reached stay unknown. Where rays disagree, occupied wins (a ray grazing the edge of a
voxel says less than a return inside it).

A ray only shows that its line is empty, while a label grid calls a voxel occupied when any surface lies in
it. Two options make "free" more conservative where the two differ most: `skip_hit_level` marks nothing
free in the height level of the ray's own return (a ray that ends on the ground 20 m away runs its last
metres inside the ground-level voxels it passes over, above the surface they hold), and `clearance` leaves
voxels within that many voxels (horizontally) of any return unknown (edges of objects).

The traversal is exact and vectorised: a segment crosses the voxel planes x = k, y = k, z = k at
parameters that follow from its end points; sorting each ray's crossings gives its pieces, and the voxel
holding the midpoint of every piece of positive length is a voxel the ray passes through. None of the
project's dependencies traverses rays from many origins through a voxel grid, and the operation is small,
so it is written here (in torch, so it runs on CPU and GPU alike) and checked against a per-voxel slab test.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tacocc_core.geometry import GridSpec, invert_transform, transform_points
from tacocc_core.labels import IGNORE

FREE = 0
OCCUPIED = 1
UNKNOWN = 255
MAX_RAYS = 1 << 20  # rays per traversal call (see the sort key in `traversed_voxels`)


def clip_to_grid(origins: torch.Tensor, ends: torch.Tensor, grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameters (s0, s1) of the part of each segment origin + s (end - origin), s in [0, 1], inside the grid.

    Args:
        origins, ends: (N, 3) float64, in voxel units (metres minus grid.lower, divided by voxel size).
        grid: the grid ([0, shape] per axis in voxel units).

    Returns:
        s0, s1: (N,) float64; segments with s0 >= s1 miss the grid.
    """
    shape = torch.tensor(grid.shape, dtype=torch.float64, device=origins.device)
    delta = ends - origins
    moving = delta != 0
    safe = torch.where(moving, delta, torch.ones_like(delta))
    ta = (0.0 - origins) / safe
    tb = (shape - origins) / safe
    lo = torch.where(moving, torch.minimum(ta, tb), torch.full_like(ta, -torch.inf))
    hi = torch.where(moving, torch.maximum(ta, tb), torch.full_like(ta, torch.inf))
    inside_static = ~moving & (origins >= 0) & (origins < shape)
    lo = torch.where(~moving & ~inside_static, torch.full_like(lo, torch.inf), lo)
    s0 = torch.clamp(lo.max(dim=1).values, min=0.0)
    s1 = torch.clamp(hi.min(dim=1).values, max=1.0)
    return s0, s1


def traversed_voxels(
    origins: torch.Tensor, ends: torch.Tensor, grid: GridSpec, eps: float = 1e-9
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (ray, voxel) pair such that the segment passes through the voxel for a positive length.

    Args:
        origins, ends: (N, 3) float, metres, the grid's frame.
        grid: the voxel grid.
        eps: pieces shorter than this (in segment parameter) are ignored (corner and edge touches).

    Returns:
        ray: (M,) int64 index of the segment; voxel: (M, 3) int64 voxel index. Includes the voxels
        holding the start and end points when they are inside the grid.
    """
    if origins.shape[0] > MAX_RAYS:
        raise ValueError(f"traversed_voxels: at most {MAX_RAYS} rays per call (pass chunks), got {origins.shape[0]}")
    lower = torch.tensor(grid.lower, dtype=torch.float64, device=origins.device)
    size = torch.tensor(grid.voxel_size, dtype=torch.float64, device=origins.device)
    uo = (origins.to(torch.float64) - lower) / size
    ue = (ends.to(torch.float64) - lower) / size
    s0, s1 = clip_to_grid(uo, ue, grid)
    keep = torch.nonzero(s1 - s0 > eps).squeeze(1)
    uo, ue, s0, s1 = uo[keep], ue[keep], s0[keep], s1[keep]
    delta = ue - uo
    n = keep.numel()
    rows = torch.arange(n, device=origins.device)
    # Crossings of the planes between the clipped start and end, per axis (ragged -> flat lists).
    first = torch.floor(uo + s0[:, None] * delta)
    last = torch.floor(uo + s1[:, None] * delta)
    counts = (last - first).abs().to(torch.int64)
    all_rays, all_s = [rows, rows], [s0, s1]
    for axis in range(3):
        c = counts[:, axis]
        ray = torch.repeat_interleave(rows, c)
        starts = torch.cumsum(c, 0) - c
        step = torch.arange(ray.numel(), device=origins.device) - torch.repeat_interleave(starts, c)
        d = delta[ray, axis]
        plane = torch.where(d > 0, first[ray, axis] + step + 1, first[ray, axis] - step)
        all_rays.append(ray)
        all_s.append((plane - uo[ray, axis]) / d)
    ray = torch.cat(all_rays)
    s = torch.cat(all_s)
    # One sort by (ray, s): s lies in [0, 1], so 2 * ray + s keeps rays apart; with at most MAX_RAYS rays
    # float64 still resolves s to ~2e-10, finer than eps.
    order = torch.argsort(2.0 * ray.to(torch.float64) + s)
    ray, s = ray[order], s[order]
    piece = (ray[:-1] == ray[1:]) & (s[1:] - s[:-1] > eps)
    ray_p = ray[:-1][piece]
    mid = 0.5 * (s[:-1][piece] + s[1:][piece])
    point = uo[ray_p] + mid[:, None] * delta[ray_p]
    high = torch.tensor(grid.shape, device=origins.device) - 1
    voxel = torch.minimum(torch.clamp(torch.floor(point).to(torch.int64), min=0), high)
    return keep[ray_p], voxel


def lidar_geometry_target(
    points: np.ndarray | torch.Tensor,
    grid: GridSpec,
    origins: np.ndarray | torch.Tensor | None = None,
    max_lag_s: float | None = None,
    chunk: int = 65536,
    skip_hit_level: bool = False,
    clearance: int = 0,
) -> torch.Tensor:
    """Per-voxel geometry target from (multi-sweep) LiDAR returns: FREE (0), OCCUPIED (1), UNKNOWN (255).

    Args:
        points: (N, 3+) float, the grid's frame (the `Frame.points` layout: x, y, z, intensity, time_lag_s).
        grid: the target grid.
        origins: where each ray starts, the grid's frame: None (the frame's origin, i.e. the keyframe
            LiDAR), (3,) for all rays, or (N, 3) per point (see `sweep_origins`).
        max_lag_s: returns with time_lag_s (5th column) above this are left out.
        chunk: rays traversed at once, at most MAX_RAYS (bounds memory: about 100 bytes per crossed voxel).
        skip_hit_level: a ray marks no voxel free in the height level (z index) of its own return.
        clearance: voxels within this many voxels of a return, in x and y (same level), stay unknown.

    Returns:
        (X, Y, Z) uint8 tensor on the device of `points`.
    """
    if not 1 <= chunk <= MAX_RAYS:
        raise ValueError(f"lidar_geometry_target: chunk must be in 1..{MAX_RAYS}, got {chunk}")
    if clearance < 0:
        raise ValueError(f"lidar_geometry_target: clearance must be >= 0, got {clearance}")
    pts = torch.as_tensor(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"lidar_geometry_target: expected (N, 3+) points, got {tuple(pts.shape)}")
    device = pts.device
    n = pts.shape[0]
    if origins is None:
        orig = torch.zeros((n, 3), dtype=torch.float64, device=device)
    else:
        orig = torch.as_tensor(origins, device=device).to(torch.float64)
        if orig.shape == (3,):
            orig = orig.expand(n, 3)
        elif orig.shape != (n, 3):
            raise ValueError(f"lidar_geometry_target: origins must be (3,) or ({n}, 3), got {tuple(orig.shape)}")
    xyz = pts[:, :3].to(torch.float64)
    keep = torch.isfinite(xyz).all(dim=1) & torch.isfinite(orig).all(dim=1)
    if max_lag_s is not None:
        if pts.shape[1] < 5:
            raise ValueError(f"lidar_geometry_target: max_lag_s needs a time-lag column, points are {tuple(pts.shape)}")
        keep &= pts[:, 4].to(torch.float64) <= max_lag_s
    xyz, orig = xyz[keep], orig[keep]
    shape = grid.shape
    lower = torch.tensor(grid.lower, dtype=torch.float64, device=device)
    size = torch.tensor(grid.voxel_size, dtype=torch.float64, device=device)
    hit = torch.floor((xyz - lower) / size).to(torch.int64)  # may lie outside the grid
    free = torch.zeros(shape, dtype=torch.bool, device=device)
    for start in range(0, xyz.shape[0], chunk):
        ray, voxel = traversed_voxels(orig[start : start + chunk], xyz[start : start + chunk], grid)
        if skip_hit_level:
            voxel = voxel[voxel[:, 2] != hit[start + ray, 2]]
        free[voxel[:, 0], voxel[:, 1], voxel[:, 2]] = True
    inside = ((hit >= 0) & (hit < torch.tensor(shape, device=device))).all(dim=1)
    hit = hit[inside]
    occupied = torch.zeros(shape, dtype=torch.bool, device=device)
    occupied[hit[:, 0], hit[:, 1], hit[:, 2]] = True
    if clearance > 0:
        width = 2 * clearance + 1
        near = F.max_pool3d(
            occupied[None, None].float(), (width, width, 1), stride=1, padding=(clearance, clearance, 0)
        )[0, 0].bool()
        free &= ~near
    target = torch.full(shape, UNKNOWN, dtype=torch.uint8, device=device)
    target[free] = FREE
    target[occupied] = OCCUPIED
    return target


def sweep_origins(
    time_lag_s: np.ndarray,
    key_stamp_s: float,
    key_lidar2global: np.ndarray,
    track_stamps_s: np.ndarray,
    track_lidar2global: np.ndarray,
) -> np.ndarray:
    """(N, 3) float64: the LiDAR's position when each point was measured, in the keyframe LiDAR frame.

    The position at time key_stamp_s - time_lag_s is interpolated linearly between the poses of a track
    (e.g. the frames of a training sequence) and held constant beyond its ends.

    Args:
        time_lag_s: (N,) seconds before the keyframe (the 5th column of `Frame.points`).
        key_stamp_s: the keyframe's stamp, seconds.
        key_lidar2global: (4, 4) the keyframe's LiDAR pose.
        track_stamps_s: (K,) increasing stamps of the track, seconds.
        track_lidar2global: (K, 4, 4) LiDAR poses of the track.
    """
    stamps = np.asarray(track_stamps_s, dtype=np.float64)
    poses = np.asarray(track_lidar2global, dtype=np.float64)
    if stamps.ndim != 1 or poses.shape != (len(stamps), 4, 4) or len(stamps) == 0:
        raise ValueError(
            f"sweep_origins: need (K,) stamps and (K, 4, 4) poses with K >= 1, got {stamps.shape} and {poses.shape}"
        )
    if np.any(np.diff(stamps) <= 0):
        raise ValueError(f"sweep_origins: track stamps must increase, got {stamps.tolist()}")
    times = key_stamp_s - np.asarray(time_lag_s, dtype=np.float64)
    positions = np.stack([np.interp(times, stamps, poses[:, axis, 3]) for axis in range(3)], axis=1)
    return transform_points(invert_transform(key_lidar2global), positions)


def geometry_to_semantic(target: torch.Tensor) -> torch.Tensor:
    """Geometry target -> semantic labels: FREE -> 0 (empty), OCCUPIED and UNKNOWN -> 255 (class unknown)."""
    return torch.where(target == FREE, torch.zeros_like(target), torch.full_like(target, IGNORE))


def geometry_loss(logits: torch.Tensor, target: torch.Tensor, occupied_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy of occupancy p_occ = 1 - p(empty) against a geometry target.

    Computed from log-softmax terms (log p_occ = logsumexp of the non-empty logits - logsumexp of all),
    so it stays finite where p(empty) rounds to 0 or 1.

    Args:
        logits: (B, C, X, Y, Z) class logits, class 0 = empty.
        target: (B, X, Y, Z) uint8 FREE / OCCUPIED / UNKNOWN; UNKNOWN voxels are left out.
        occupied_weight: weight of OCCUPIED voxels relative to FREE ones (rays make far more free voxels).

    Returns:
        Scalar: the weighted mean over known voxels (0, with a gradient, when none is known).
    """
    if logits.ndim != 5 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"geometry_loss: expected logits (B, C, X, Y, Z) and target (B, X, Y, Z), "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    bad = (target != FREE) & (target != OCCUPIED) & (target != UNKNOWN)
    if bad.any():
        raise ValueError(f"geometry_loss: target values must be 0, 1 or 255, got {target[bad].unique().tolist()}")
    log_all = torch.logsumexp(logits.float(), dim=1)
    log_empty = logits[:, 0].float() - log_all
    log_occ = torch.logsumexp(logits[:, 1:].float(), dim=1) - log_all
    occupied = target == OCCUPIED
    known = occupied | (target == FREE)
    weight = torch.where(occupied, occupied_weight, 1.0) * known
    nll = -torch.where(occupied, log_occ, log_empty)
    total = weight.sum()
    if total == 0:
        return logits.sum() * 0.0
    return (nll * weight).sum() / total


def teacher_pseudo_labels(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Labels from a frozen teacher: argmax class where its softmax probability >= threshold, else 255.

    Args:
        logits: (B, C, X, Y, Z) teacher class logits.
        threshold: in (0, 1].

    Returns:
        (B, X, Y, Z) uint8.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"teacher_pseudo_labels: threshold must be in (0, 1], got {threshold}")
    prob = F.softmax(logits.detach().float(), dim=1)
    confidence, label = prob.max(dim=1)
    return torch.where(confidence >= threshold, label, torch.full_like(label, IGNORE)).to(torch.uint8)


def fill_unlabelled(labels: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
    """Ground-truth labels where known (!= 255), pseudo-labels elsewhere; same shape (B, X, Y, Z) uint8."""
    if labels.shape != pseudo.shape:
        raise ValueError(f"fill_unlabelled: shapes differ, {tuple(labels.shape)} vs {tuple(pseudo.shape)}")
    return torch.where(labels == IGNORE, pseudo, labels)
