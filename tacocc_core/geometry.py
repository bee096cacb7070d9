"""Geometry shared by every part: the voxel grid, homogeneous transforms, pinhole projection.

Conventions: metres; 4x4 float64 matrices named `a2b` map points from frame a into frame b;
a voxel (i, j, k) has its centre at `lower + (index + 0.5) * voxel_size`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class GridSpec:
    """An axis-aligned voxel grid.

    Args:
        lower: (3,) metres, the minimum corner (x, y, z).
        voxel_size: (3,) metres per voxel along x, y, z.
        shape: (nx, ny, nz) voxels.
    """

    lower: tuple[float, float, float]
    voxel_size: tuple[float, float, float]
    shape: tuple[int, int, int]

    @classmethod
    def from_ranges(
        cls,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        z_range: tuple[float, float],
        voxel_size: float | tuple[float, float, float],
    ) -> GridSpec:
        size = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
        lower = np.array([x_range[0], y_range[0], z_range[0]], dtype=np.float64)
        upper = np.array([x_range[1], y_range[1], z_range[1]], dtype=np.float64)
        extent = (upper - lower) / size
        shape = np.round(extent).astype(int)
        if np.any(shape <= 0) or not np.allclose(extent, shape, atol=1e-6):
            raise ValueError(
                f"grid ranges {x_range}, {y_range}, {z_range} are not a positive whole number of "
                f"voxels of size {tuple(size)}"
            )
        return cls(tuple(lower.tolist()), tuple(size.tolist()), (int(shape[0]), int(shape[1]), int(shape[2])))

    @property
    def upper(self) -> np.ndarray:
        """(3,) metres, the maximum corner."""
        return np.asarray(self.lower) + np.asarray(self.voxel_size) * np.asarray(self.shape)

    def index_to_center(self, index: np.ndarray) -> np.ndarray:
        """(..., 3) integer voxel indices -> (..., 3) float64 metric centres."""
        return np.asarray(self.lower) + (np.asarray(index, dtype=np.float64) + 0.5) * np.asarray(self.voxel_size)

    def point_to_index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) metric points -> ((N, 3) int64 voxel indices, (N,) bool inside-the-grid mask).

        Indices of points outside the grid are meaningless; use the mask.
        """
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] < 3:
            raise ValueError(f"expected (N, 3) points, got {points.shape}")
        finite = np.all(np.isfinite(points[:, :3]), axis=1)
        scaled = (np.where(finite[:, None], points[:, :3], 0.0) - np.asarray(self.lower)) / np.asarray(self.voxel_size)
        idx = np.floor(np.clip(scaled, -1, np.asarray(self.shape))).astype(np.int64)
        inside = finite & np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=1)
        return idx, inside

    def centers(self) -> np.ndarray:
        """(nx, ny, nz, 3) float64 metric centres of every voxel."""
        grids = np.meshgrid(*(np.arange(n) for n in self.shape), indexing="ij")
        return self.index_to_center(np.stack(grids, axis=-1))


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation + (3,) translation -> (4, 4) float64 homogeneous transform."""
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return out


def quaternion_wxyz_to_matrix(quaternion_wxyz: np.ndarray) -> np.ndarray:
    """Quaternion in (w, x, y, z) order, as nuScenes stores it -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(quaternion_wxyz, dtype=np.float64)
    return Rotation.from_quat([x, y, z, w]).as_matrix()


def pose_to_transform(translation: np.ndarray, quaternion_wxyz: np.ndarray) -> np.ndarray:
    """A nuScenes-style pose (translation, rotation quaternion w,x,y,z) -> (4, 4) `child2parent`."""
    return make_transform(quaternion_wxyz_to_matrix(quaternion_wxyz), translation)


def invert_transform(a2b: np.ndarray) -> np.ndarray:
    """(4, 4) rigid transform a2b -> b2a, using the transpose of the rotation."""
    a2b = np.asarray(a2b, dtype=np.float64)
    rot_t = a2b[:3, :3].T
    return make_transform(rot_t, -rot_t @ a2b[:3, 3])


def transform_points(a2b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply (4, 4) a2b to (N, 3+) points in frame a; extra columns (intensity, ...) are kept as they are."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"expected (N, 3+) points, got {points.shape}")
    out = points.copy()
    xyz = points[:, :3].astype(np.float64)
    out[:, :3] = xyz @ np.asarray(a2b)[:3, :3].T + np.asarray(a2b)[:3, 3]
    return out


def project_points(points: np.ndarray, a2cam: np.ndarray, cam2img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, 3) points in frame a through a pinhole camera.

    Args:
        points: (N, 3) metres, frame a.
        a2cam: (4, 4) transform into the camera frame (z forward, x right, y down).
        cam2img: (3, 3) intrinsics.

    Returns:
        uv: (N, 2) float64 pixel coordinates (column, row); meaningless where depth <= 0.
        depth: (N,) float64 metres along the optical axis.
    """
    cam = transform_points(a2cam, np.asarray(points)[:, :3])[:, :3].astype(np.float64)
    depth = cam[:, 2]
    pix = cam @ np.asarray(cam2img, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pix[:, :2] / depth[:, None]
    return uv, depth


def in_image(uv: np.ndarray, depth: np.ndarray, width: int, height: int, min_depth: float = 0.1) -> np.ndarray:
    """(N,) bool: in front of the camera and inside a width x height image."""
    return (depth > min_depth) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)


@dataclass(frozen=True)
class ImageTransform:
    """Resize by `scale`, then crop the window starting at `crop` (column, row) of size `out_size`.

    The same bookkeeping maps pixels and intrinsics: `u' = u * sx - crop_u`, `v' = v * sy - crop_v`.

    Args:
        scale: (sx, sy) resize factors.
        crop: (column, row) of the crop's top-left corner in the resized image.
        out_size: (height, width) of the result.
    """

    scale: tuple[float, float]
    crop: tuple[int, int]
    out_size: tuple[int, int]

    @classmethod
    def resize_to(cls, in_size: tuple[int, int], out_size: tuple[int, int]) -> ImageTransform:
        """A plain resize from (height, width) to (height, width), no crop."""
        (h, w), (oh, ow) = in_size, out_size
        return cls((ow / w, oh / h), (0, 0), (oh, ow))

    @classmethod
    def resize_crop_bottom(cls, in_size: tuple[int, int], out_size: tuple[int, int]) -> ImageTransform:
        """Keep the aspect ratio, scale so the width fits, and keep the bottom rows (the sky is dropped first).

        For 900x1600 -> 256x704 this resizes by 0.44 to 396x704 and crops rows 140..396.
        """
        (h, w), (oh, ow) = in_size, out_size
        s = ow / w
        rh = round(h * s)
        if rh < oh:
            s = oh / h
            rh = oh
        rw = round(w * s)
        return cls((s, s), ((rw - ow) // 2, rh - oh), (oh, ow))

    def matrix(self) -> np.ndarray:
        """(3, 3) pixel map of the resize + crop."""
        sx, sy = self.scale
        cu, cv = self.crop
        return np.array([[sx, 0.0, -cu], [0.0, sy, -cv], [0.0, 0.0, 1.0]])

    def apply_to_intrinsics(self, cam2img: np.ndarray) -> np.ndarray:
        """(3, 3) intrinsics of the original image -> intrinsics of the transformed image."""
        return self.matrix() @ np.asarray(cam2img, dtype=np.float64)

    def apply_to_pixels(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates in the original image -> in the transformed image."""
        sx, sy = self.scale
        cu, cv = self.crop
        return np.asarray(uv, dtype=np.float64) * np.array([sx, sy]) - np.array([cu, cv])

    def apply_to_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 image -> (out_h, out_w, C), bilinear resize then crop (zero-padded if short)."""
        import cv2

        h, w = image.shape[:2]
        sx, sy = self.scale
        rw, rh = max(1, round(w * sx)), max(1, round(h * sy))
        # Area averaging only where bilinear would alias (shrinking by more than 2x); for milder scales
        # bilinear is within a fraction of a grey level and much cheaper (the node decodes JPEGs at 1/2
        # size and then scales by ~0.9).
        interp = cv2.INTER_AREA if sx < 0.5 and sy < 0.5 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (rw, rh), interpolation=interp)
        if resized.ndim == 2:
            resized = resized[:, :, None]
        oh, ow = self.out_size
        cu, cv = self.crop
        out = np.zeros((oh, ow, resized.shape[2]), dtype=image.dtype)
        src = resized[max(cv, 0) : cv + oh, max(cu, 0) : cu + ow]
        out[max(-cv, 0) : max(-cv, 0) + src.shape[0], max(-cu, 0) : max(-cu, 0) + src.shape[1]] = src
        return out if image.ndim == 3 else out[:, :, 0]
