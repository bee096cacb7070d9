"""Twin of `tacocc_core.viz.raster.nearest_per_pixel`: the nearest candidate per pixel, candidate by candidate."""

from __future__ import annotations

import numpy as np


def nearest_per_pixel_reference(pixel: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slow loop twin of `nearest_per_pixel`, for tests."""
    best: dict[int, int] = {}
    for m, (p, d) in enumerate(zip(pixel.tolist(), depth.tolist(), strict=True)):
        if p not in best or d < depth[best[p]]:
            best[p] = m
    pixels = np.array(sorted(best), dtype=np.int64)
    return np.array([best[p] for p in pixels.tolist()], dtype=np.int64), pixels
