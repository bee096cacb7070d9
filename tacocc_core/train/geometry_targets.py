"""LiDAR geometry pseudo-labels for every frame of a training batch (ego-compensated multi-sweep rays).

Each frame's points already hold its previous sweeps moved into the keyframe LiDAR frame, with the time lag
as 5th column. A ray starts where the LiDAR was when the point was measured: `sweep_origins` interpolates
that position between the poses of the frames of the same sequence (held at the first pose before it).
"""

from __future__ import annotations

import numpy as np
import torch

from tacocc_core.geometry import GridSpec
from tacocc_core.train.pseudo_labels import UNKNOWN, lidar_geometry_target, sweep_origins


def batch_geometry_targets(
    batch: dict[str, torch.Tensor], grid: GridSpec, max_lag_s: float, skip_hit_level: bool = False, clearance: int = 0
) -> torch.Tensor:
    """(B, T, X, Y, Z) uint8 FREE / OCCUPIED / UNKNOWN per frame of `batch` (the `tacocc_core.batch` layout).

    Args:
        batch: needs points (P, 5) [x, y, z, intensity, time_lag_s] in each frame's LiDAR frame,
            points_frame (P,), lidar2global (B, T, 4, 4) and stamps_ns (B, T).
        grid: the output grid (LiDAR frame).
        max_lag_s: returns older than this are left out.
        skip_hit_level, clearance: the conservative free-space options of `lidar_geometry_target`.
    """
    b, steps = batch["stamps_ns"].shape
    points = batch["points"].detach().cpu()
    frame_of = batch["points_frame"].cpu()
    poses = batch["lidar2global"].cpu().numpy()
    stamps = batch["stamps_ns"].cpu().numpy().astype(np.float64) * 1e-9
    out = torch.full((b, steps, *grid.shape), UNKNOWN, dtype=torch.uint8)
    for i in range(b):
        # A track needs strictly increasing stamps; a repeated stamp (a duplicated frame) keeps its first pose.
        keep = np.concatenate([[True], np.diff(stamps[i]) > 0])
        for t in range(steps):
            pts = points[frame_of == i * steps + t]
            if pts.shape[0] == 0:
                continue
            origins = sweep_origins(pts[:, 4].numpy(), stamps[i, t], poses[i, t], stamps[i][keep], poses[i][keep])
            out[i, t] = lidar_geometry_target(
                pts, grid, origins=origins, max_lag_s=max_lag_s, skip_hit_level=skip_hit_level, clearance=clearance
            )
    return out
