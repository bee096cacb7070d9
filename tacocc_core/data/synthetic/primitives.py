"""Analytic solids of the synthetic street and the two queries on them: ray intersection and inside-test.

The camera renderer, the LiDAR simulator and the label voxeliser all ask these functions, so images,
points and labels come from one geometry. Everything is in the street frame (x along the road, y to the
left, z up, ground at z = 0), metres.

Kinds of part (one row of `Parts`):
    BOX       yawed box: centre, half extents (hx, hy, hz), yaw about z.
    CYLINDER  vertical cylinder: centre, radius hx (= hy), half height hz.
    ELLIPSOID axis-aligned (after yaw) ellipsoid: centre, radii (hx, hy, hz).
Written here because no maintained library offers vectorised numpy ray casting over a handful of
analytic solids without a mesh step (trimesh/embree would need triangulation and another dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOX, CYLINDER, ELLIPSOID = 0, 1, 2
_EPS = 1e-9


@dataclass
class Parts:
    """N solids at one instant, as arrays.

    Args:
        kind: (N,) int8, BOX / CYLINDER / ELLIPSOID.
        center: (N, 3) float64 street frame.
        half: (N, 3) float64 half extents or radii.
        yaw: (N,) float64 radians about z.
        label: (N,) uint8 occupancy class of the part.
        instance: (N,) int64 object index (-1 for scenery without an annotation).
    """

    kind: np.ndarray
    center: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    label: np.ndarray
    instance: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def radius(self) -> np.ndarray:
        """(N,) radius of a bounding sphere around each part's centre."""
        return np.linalg.norm(self.half, axis=1)


def _to_local(i: int, parts: Parts, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, 3) origins and directions (street frame) -> the part's own frame (centred, yaw removed)."""
    c, s = np.cos(parts.yaw[i]), np.sin(parts.yaw[i])
    rot_t = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # R(yaw)^T
    return (origins - parts.center[i]) @ rot_t.T, dirs @ rot_t.T


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < _EPS, np.where(d < 0, -_EPS, _EPS), d)


def intersect_part(i: int, parts: Parts, origins: np.ndarray, dirs: np.ndarray, t_min: float = 1e-4) -> np.ndarray:
    """First hit of rays with part i.

    Args:
        i: index of the part in `parts`.
        parts: the solids.
        origins: (M, 3) ray origins, street frame.
        dirs: (M, 3) ray directions, street frame; need not be unit length (t is in units of |dir|).
        t_min: hits closer than this are ignored.

    Returns:
        t: (M,) distance parameter of the entry point, inf where the ray misses or starts inside.
    """
    o, d = _to_local(i, parts, origins, dirs)
    h = parts.half[i]
    kind = parts.kind[i]
    ox, oy, oz = o[:, 0], o[:, 1], o[:, 2]
    dx, dy, dz = _safe(d[:, 0]), _safe(d[:, 1]), _safe(d[:, 2])
    if kind == BOX:
        t_near = np.full(len(o), -np.inf)
        t_far = np.full(len(o), np.inf)
        for oa, da, ha in ((ox, dx, h[0]), (oy, dy, h[1]), (oz, dz, h[2])):
            t1, t2 = (-ha - oa) / da, (ha - oa) / da
            t_near = np.maximum(t_near, np.minimum(t1, t2))
            t_far = np.minimum(t_far, np.maximum(t1, t2))
        return np.where((t_near <= t_far) & (t_near > t_min), t_near, np.inf)
    if kind == CYLINDER:
        r = h[0]
        a = dx * dx + dy * dy
        b = 2 * (ox * dx + oy * dy)
        c = ox * ox + oy * oy - r * r
        disc = b * b - 4 * a * c
        with np.errstate(invalid="ignore"):
            t_side = (-b - np.sqrt(disc)) / (2 * a)
        side_ok = (disc >= 0) & (t_side > t_min) & (np.abs(oz + t_side * dz) <= h[2])
        t_cap = np.where(dz < 0, h[2] - oz, -h[2] - oz) / dz
        xc, yc = ox + t_cap * dx, oy + t_cap * dy
        cap_ok = (t_cap > t_min) & (xc * xc + yc * yc <= r * r)
        return np.minimum(np.where(side_ok, t_side, np.inf), np.where(cap_ok, t_cap, np.inf))
    # ELLIPSOID: a unit sphere after scaling by the radii.
    sx, sy, sz = ox / h[0], oy / h[1], oz / h[2]
    ex, ey, ez = dx / h[0], dy / h[1], dz / h[2]
    a = ex * ex + ey * ey + ez * ez
    b = 2 * (sx * ex + sy * ey + sz * ez)
    c = sx * sx + sy * sy + sz * sz - 1.0
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where((disc >= 0) & (t > t_min), t, np.inf)


def part_normal(i: int, parts: Parts, points: np.ndarray) -> np.ndarray:
    """(M, 3) street-frame points on the surface of part i -> (M, 3) outward unit normals."""
    c, s = np.cos(parts.yaw[i]), np.sin(parts.yaw[i])
    q = points - parts.center[i]
    local = np.stack([c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1], q[:, 2]], axis=1)
    h = parts.half[i]
    kind = parts.kind[i]
    normal = np.zeros_like(local)
    rows = np.arange(len(local))
    if kind == BOX:
        axis = np.argmax(np.abs(local) / h, axis=1)
        normal[rows, axis] = np.sign(local[rows, axis])
    elif kind == CYLINDER:
        side = np.hypot(local[:, 0], local[:, 1]) / h[0] >= np.abs(local[:, 2]) / h[2]
        normal[:, 0] = np.where(side, local[:, 0], 0.0)
        normal[:, 1] = np.where(side, local[:, 1], 0.0)
        normal[:, 2] = np.where(side, 0.0, np.sign(local[:, 2]))
    else:
        normal = local / (h * h)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), _EPS)
    return np.stack([c * normal[:, 0] - s * normal[:, 1], s * normal[:, 0] + c * normal[:, 1], normal[:, 2]], axis=1)


def inside_part(i: int, parts: Parts, points: np.ndarray) -> np.ndarray:
    """(M, 3) street-frame points -> (M,) bool, inside (or on) part i."""
    c, s = np.cos(parts.yaw[i]), np.sin(parts.yaw[i])
    q = points - parts.center[i]
    x, y = c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1]
    z = q[:, 2]
    h = parts.half[i]
    kind = parts.kind[i]
    if kind == BOX:
        return (np.abs(x) <= h[0]) & (np.abs(y) <= h[1]) & (np.abs(z) <= h[2])
    if kind == CYLINDER:
        return (x * x + y * y <= h[0] * h[0]) & (np.abs(z) <= h[2])
    return (x / h[0]) ** 2 + (y / h[1]) ** 2 + (z / h[2]) ** 2 <= 1.0


def intersect_ground(origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """(M,) t of the hit with the ground plane z = 0 from above; inf where the ray goes up or starts below."""
    dz = dirs[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origins[:, 2] / dz
    return np.where((dz < -_EPS) & (origins[:, 2] > 0) & (t > 0), t, np.inf)
