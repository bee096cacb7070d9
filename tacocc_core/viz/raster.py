"""Depth-tested splatting: many candidate pixels, the nearest one wins each pixel.

numpy has no z-buffer, and fancy-index assignment with repeated indices does not promise which write
survives, so the winner per pixel is chosen by sorting (pixel, depth) pairs instead.
"""

from __future__ import annotations

import numpy as np


def nearest_per_pixel(pixel: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick, for each distinct pixel, the candidate with the smallest depth.

    Args:
        pixel: (M,) int64 flat pixel index of each candidate (row * width + column).
        depth: (M,) float distance from the viewer of each candidate.

    Returns:
        winners: (K,) int64 indices into the candidates, one per distinct pixel (ties: the first candidate).
        pixels: (K,) int64 the distinct pixels, ascending.
    """
    pixel, depth = np.asarray(pixel), np.asarray(depth)
    if pixel.shape != depth.shape or pixel.ndim != 1:
        raise ValueError(f"pixel and depth must be (M,) arrays of one length, got {pixel.shape} and {depth.shape}")
    if pixel.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(pixel.size), depth, pixel))
    sorted_pixel = pixel[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_pixel[1:] != sorted_pixel[:-1]
    return order[first].astype(np.int64), sorted_pixel[first].astype(np.int64)


def disc_offsets(radius: int) -> np.ndarray:
    """(K, 2) int64 (d_row, d_col) offsets of the pixels within `radius` of a centre pixel."""
    r = int(radius)
    d_row, d_col = np.mgrid[-r : r + 1, -r : r + 1]
    inside = d_row**2 + d_col**2 <= r * r + r  # a little rounder than the strict disc for small radii
    return np.stack([d_row[inside], d_col[inside]], axis=1).astype(np.int64)
