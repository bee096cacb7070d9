"""Cast a grid of rays (a camera image or a LiDAR sweep) into the street, with per-part culling.

Rays are laid out as a (rows, cols) grid so that each part is tested only against the rows and columns
its bounding sphere can cover: a pixel rectangle for a pinhole camera, a beam x azimuth window for a
spinning LiDAR. `tacocc_core.reference.raycast.cast_brute_force` tests every ray against every part: the
unit tests compare the culled version with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tacocc_core.data.synthetic.primitives import Parts, intersect_ground, intersect_part, part_normal
from tacocc_core.data.synthetic.street import ground_label


@dataclass
class Hits:
    """Result of a cast over R rays (flattened row-major from the grid).

    Args:
        t: (R,) distance along the (unit) ray, inf where nothing is hit (sky).
        part: (R,) int64 index into the parts, -1 for the ground, -2 for nothing.
        label: (R,) uint8 class of what was hit (0 for nothing).
        instance: (R,) int64 object index, -1 for scenery and nothing.
        normal: (R, 3) unit normal, street frame.
        point: (R, 3) hit point, street frame (inf-scaled where nothing is hit).
    """

    t: np.ndarray
    part: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    normal: np.ndarray
    point: np.ndarray


class PinholeGrid:
    """Rays through the pixel centres of a (height, width) pinhole camera.

    Args:
        cam2img: (3, 3) intrinsics.
        cam2street: (4, 4) camera pose (z forward, x right, y down) in the street frame.
        size: (height, width).
    """

    def __init__(self, cam2img: np.ndarray, cam2street: np.ndarray, size: tuple[int, int]) -> None:
        h, w = size
        self.shape = (h, w)
        self.cam2street = cam2street
        self.cam2img = cam2img
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        pix = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(cam2img).T
        dirs = pix / np.linalg.norm(pix, axis=-1, keepdims=True)
        self.dirs = dirs @ cam2street[:3, :3].T  # (h, w, 3) street frame
        self.origin = cam2street[:3, 3].copy()
        self.street2cam = np.linalg.inv(cam2street)

    def window(self, center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows and columns that a sphere can cover, or None when it is behind the camera."""
        h, w = self.shape
        c = self.street2cam[:3, :3] @ center + self.street2cam[:3, 3]
        if c[2] + radius < 0.05:
            return None
        if c[2] - radius < 0.05:
            return np.arange(h), np.arange(w)
        corners = c + radius * np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
        pix = corners @ self.cam2img.T
        uv = pix[:, :2] / pix[:, 2:3]
        u0, v0 = np.floor(uv.min(axis=0)).astype(int)
        u1, v1 = np.ceil(uv.max(axis=0)).astype(int)
        u0, u1, v0, v1 = max(u0, 0), min(u1 + 1, w), max(v0, 0), min(v1 + 1, h)
        if u0 >= u1 or v0 >= v1:
            return None
        return np.arange(v0, v1), np.arange(u0, u1)


class SpinningGrid:
    """Rays of a spinning LiDAR: `elevations` (rows) x `azimuths` equal steps over 360 degrees (cols).

    Args:
        elevations: (B,) radians above the sensor's xy plane, one per beam (ring index = row).
        azimuths: number of firing directions per revolution.
        lidar2street: (4, 4) sensor pose in the street frame.
    """

    def __init__(self, elevations: np.ndarray, azimuths: int, lidar2street: np.ndarray) -> None:
        self.elevations = np.asarray(elevations, dtype=np.float64)
        self.shape = (len(self.elevations), azimuths)
        az = np.arange(azimuths) * (2 * np.pi / azimuths)
        el = self.elevations[:, None]
        local = np.stack(
            [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.broadcast_to(np.sin(el), (len(el), azimuths))],
            axis=-1,
        )
        self.local_dirs = local
        self.dirs = local @ lidar2street[:3, :3].T
        self.origin = lidar2street[:3, 3].copy()
        self.street2lidar = np.linalg.inv(lidar2street)

    def window(self, center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
        rows, cols = self.shape
        c = self.street2lidar[:3, :3] @ center + self.street2lidar[:3, 3]
        dist = float(np.linalg.norm(c))
        if dist <= radius * 1.01:
            return np.arange(rows), np.arange(cols)
        half = np.arcsin(min(1.0, radius / dist)) + 1e-3
        el_c = np.arcsin(c[2] / dist)
        row_idx = np.flatnonzero(np.abs(self.elevations - el_c) <= half)
        if row_idx.size == 0:
            return None
        step = 2 * np.pi / cols
        az_c = np.arctan2(c[1], c[0])
        # A cone of half-angle `half` spans at most asin(sin(half) / cos(el)) of azimuth on the circle of
        # elevation el (the whole circle once that ratio reaches 1); the largest |el| of the rows bounds it.
        ratio = np.sin(half) / max(np.cos(np.max(np.abs(self.elevations[row_idx]))), 1e-6)
        half_az = np.pi if ratio >= 1.0 else float(np.arcsin(ratio)) + 1e-3
        lo, hi = int(np.floor((az_c - half_az) / step)), int(np.ceil((az_c + half_az) / step))
        col_idx = np.unique(np.arange(lo, hi + 1) % cols)
        return row_idx, col_idx


def cast(grid: PinholeGrid | SpinningGrid, parts: Parts, max_range: float = 200.0) -> Hits:
    """First hit of every ray of `grid` among the ground and `parts` (culled per part)."""
    rows, cols = grid.shape
    dirs = grid.dirs
    origin = grid.origin
    flat_dirs = dirs.reshape(-1, 3)
    t_best = intersect_ground(np.broadcast_to(origin, flat_dirs.shape), flat_dirs)
    t_best = np.where(t_best <= max_range, t_best, np.inf).reshape(rows, cols)
    part_best = np.where(np.isfinite(t_best), -1, -2).astype(np.int64)
    radius = parts.radius
    near = np.linalg.norm(parts.center - origin, axis=1) - radius  # closest possible hit distance
    for i in np.argsort(near):  # front to back, so that hidden parts are skipped by the depth test
        if near[i] > max_range:
            break
        win = grid.window(parts.center[i], float(radius[i]))
        if win is None:
            continue
        r_idx, c_idx = win
        current = t_best[np.ix_(r_idx, c_idx)]
        rr, cc = np.nonzero(current > near[i])  # rays that could still hit this part first
        if rr.size == 0:
            continue
        gr, gc = r_idx[rr], c_idx[cc]
        sub = dirs[gr, gc]
        t = intersect_part(i, parts, np.broadcast_to(origin, sub.shape), sub)
        closer = t < current[rr, cc]
        if not closer.any():
            continue
        gr, gc = gr[closer], gc[closer]
        t_best[gr, gc] = t[closer]
        part_best[gr, gc] = i
    return _finish(origin, flat_dirs, t_best.reshape(-1), part_best.reshape(-1), parts, max_range)


def _finish(origin, dirs, t, part, parts: Parts, max_range: float) -> Hits:
    """Hit points, normals (from the winning part only) and classes; hits beyond max_range are dropped."""
    far = t > max_range
    t, part = np.where(far, np.inf, t), np.where(far, -2, part)
    with np.errstate(invalid="ignore"):
        point = origin + dirs * t[:, None]
    normal = np.zeros_like(point)
    normal[:, 2] = 1.0
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(len(parts) + 1))
    for i in np.flatnonzero(np.diff(bounds)):
        rows = order[bounds[i] : bounds[i + 1]]
        normal[rows] = part_normal(i, parts, point[rows])
    label = np.zeros(len(t), dtype=np.uint8)
    instance = np.full(len(t), -1, dtype=np.int64)
    on_part = part >= 0
    label[on_part] = parts.label[part[on_part]]
    instance[on_part] = parts.instance[part[on_part]]
    ground = part == -1
    label[ground] = ground_label(point[ground, 0], point[ground, 1])
    return Hits(t, part, label, instance, normal, point)
