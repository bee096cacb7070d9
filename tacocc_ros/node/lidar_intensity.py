"""LiDAR intensities into the checkpoint's scale, and a check that they land there.

The network was trained with intensities on nuScenes' 0-255 scale (the generated scenes of the demo
checkpoint too). Drivers send their own: 0-255 (Velodyne, Hesai), 0-1 (some Livox and simulator
configurations), up to thousands (Ouster's signal). The node multiplies them by its
`lidar_intensity_scale` parameter and warns once when what results is far from 0-255.
"""

from __future__ import annotations

import numpy as np

TRAINED_MAX = 255.0  # the top of the intensity scale the checkpoints were trained on (nuScenes)
FAR_ABOVE = 4.0  # p99 above FAR_ABOVE * TRAINED_MAX is "far above"
FAR_BELOW = 0.01  # the largest value below FAR_BELOW * TRAINED_MAX is "far below" (a 0-1 scale)
SAMPLE = 4096  # points looked at per sweep


def scale_intensity(points: np.ndarray, scale: float) -> None:
    """Multiply the intensity column of `points` ((N, 4) float32 [x, y, z, intensity]) by `scale`, in place."""
    if scale != 1.0:
        points[:, 3] *= np.float32(scale)


def intensity_problem(intensity: np.ndarray, scale: float) -> str | None:
    """Why `intensity` ((N,) already scaled) looks far off the 0-255 training scale, or None when it does not.

    Looks at up to `SAMPLE` evenly spaced points. A cloud whose intensities are all 0 (no intensity field)
    is reported too: the network then sees no intensity at all.
    """
    if intensity.size == 0:
        return None
    sample = intensity[:: max(1, intensity.size // SAMPLE)]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return None
    p99, top = float(np.percentile(finite, 99)), float(finite.max())
    hint = f"(after lidar_intensity_scale {scale:g}); the checkpoint was trained on 0-{TRAINED_MAX:g}"
    if p99 > FAR_ABOVE * TRAINED_MAX:
        return (
            f"LiDAR intensities far above the training scale: p99 {p99:.4g}, max {top:.4g} {hint}: lower "
            f"lidar_intensity_scale (e.g. {TRAINED_MAX / top * scale:.3g} for a 0-{top / scale:.4g} driver scale)"
        )
    if top == 0.0:
        return f"LiDAR intensities are all 0 {hint}: the cloud has no intensity, predictions will be worse"
    if top < FAR_BELOW * TRAINED_MAX:
        return (
            f"LiDAR intensities far below the training scale: max {top:.4g} {hint}: raise lidar_intensity_scale "
            f"(e.g. {TRAINED_MAX / top * scale:.3g} for a 0-{top:.3g} driver scale)"
        )
    return None
