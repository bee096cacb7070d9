"""Which way is forward: the map from a grid's frame to the display frame (right, forward, up).

Grids live in different frames: SurroundOcc labels and our predictions in the nuScenes LIDAR_TOP frame,
whose +y points forward (x right, z up); Occ3D labels in the ego frame, whose +x points forward (y left).
The pictures always put forward up the image, so every view first names the grid's forward axis.
With z up and right-handed axes the right-hand direction follows from it: right = forward x up.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Forward = Literal["+x", "-x", "+y", "-y"]
FORWARDS: tuple[str, ...] = ("+x", "-x", "+y", "-y")

LIDAR_FORWARD: Forward = "+y"  # nuScenes LIDAR_TOP: x right, y forward, z up
EGO_FORWARD: Forward = "+x"  # nuScenes ego / Occ3D: x forward, y left, z up


def check_forward(forward: str) -> tuple[int, int, int, int]:
    """Forward axis name -> (forward axis, forward sign, right axis, right sign) over grid axes 0 (x), 1 (y)."""
    if forward not in FORWARDS:
        raise ValueError(f"forward axis must be one of {', '.join(FORWARDS)}, got {forward!r}")
    f_axis = 0 if forward[1] == "x" else 1
    f_sign = 1 if forward[0] == "+" else -1
    # right = forward x z: (fx, fy, 0) x (0, 0, 1) = (fy, -fx, 0)
    right_axis = 1 - f_axis
    right_sign = -f_sign if f_axis == 0 else f_sign
    return f_axis, f_sign, right_axis, right_sign


def orient_columns(array: np.ndarray, forward: str) -> np.ndarray:
    """(X, Y, ...) per-column array in grid order -> (rows, cols, ...) with forward up and right to the right."""
    f_axis, f_sign, _, right_sign = check_forward(forward)
    out = array if f_axis == 0 else np.swapaxes(array, 0, 1)
    if f_sign > 0:
        out = out[::-1]
    if right_sign < 0:
        out = out[:, ::-1]
    return out


def to_display(points: np.ndarray, forward: str) -> np.ndarray:
    """(N, 3) points in the grid's frame -> (N, 3) float64 (right, forward, up) in the same units."""
    f_axis, f_sign, right_axis, right_sign = check_forward(forward)
    points = np.asarray(points, dtype=np.float64)
    return np.stack([right_sign * points[:, right_axis], f_sign * points[:, f_axis], points[:, 2]], axis=1)


def display_sizes(voxel_size: tuple[float, float, float], forward: str) -> np.ndarray:
    """(3,) voxel edge lengths of the grid -> along (right, forward, up)."""
    f_axis, _, right_axis, _ = check_forward(forward)
    return np.array([voxel_size[right_axis], voxel_size[f_axis], voxel_size[2]], dtype=np.float64)
