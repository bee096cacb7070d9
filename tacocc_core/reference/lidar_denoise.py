"""Twin of `tacocc_core.conditioning.lidar_denoise.denoise_mask`: the filters one after the other.

Non-finite rows are found and zeroed first, then each bound is tested on its own. The validation, the ego
box's half sizes and the outlier statistic are the fast module's own: what the twin checks is the fused
range, height and box tests and the handling of non-finite points.
"""

from __future__ import annotations

import torch

from tacocc_core.conditioning.lidar_denoise import DenoiseParams, _check, _ego_half_sizes, _statistical_inliers


def denoise_mask_reference(
    points: torch.Tensor, params: DenoiseParams, points_batch: torch.Tensor | None = None
) -> torch.Tensor:
    """`denoise_mask` test by test: non-finite rows found and zeroed first. Same arguments and result.

    Args:
        points: (N, 3+) float, LiDAR frame, metres (x, y, z first).
        params: the filters.
        points_batch: (N,) int64 frame index of each point; the outlier statistics are per frame.

    Returns:
        (N,) bool on the points' device, True for kept points.
    """
    _check(points, params)
    xyz = points[:, :3].float()
    finite = torch.isfinite(xyz)
    keep = finite[:, 0] & finite[:, 1] & finite[:, 2]  # as .all(dim=1), without a reduction over 3 columns
    xyz = torch.where(keep[:, None], xyz, torch.zeros_like(xyz))
    dist = xyz.norm(dim=1)
    keep &= (dist >= params.min_range) & (dist <= params.max_range)
    keep &= (xyz[:, 2] >= params.z_range[0]) & (xyz[:, 2] <= params.z_range[1])
    half = _ego_half_sizes(params)
    if half is not None:
        inside = (xyz[:, 0].abs() <= half[0]) & (xyz[:, 1].abs() <= half[1]) & (xyz[:, 2].abs() <= half[2])
        keep &= ~inside
    if params.outlier_neighbours > 0:
        keep &= _statistical_inliers(xyz, keep, params.outlier_neighbours, params.outlier_std, points_batch)
    return keep
