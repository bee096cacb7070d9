"""Twin of `tacocc_core.model.warp.warp_volume`: trilinear resampling voxel by voxel in float64 numpy."""

from __future__ import annotations

import numpy as np

from tacocc_core.geometry import GridSpec


def warp_volume_reference(volume: np.ndarray, prev2cur: np.ndarray, spec: GridSpec) -> np.ndarray:
    """`warp_volume` of one (C, X, Y, Z) volume on `spec`, (4, 4) prev2cur; (C, X, Y, Z) float64.

    Every current voxel centre is mapped into the previous frame, turned into continuous voxel
    coordinates, and the eight surrounding voxel values are blended with trilinear weights; corners
    outside the grid count as zero.
    """
    volume = np.asarray(volume, dtype=np.float64)
    _, nx, ny, nz = volume.shape
    cur2prev = np.linalg.inv(np.asarray(prev2cur, dtype=np.float64))
    out = np.zeros_like(volume)
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                centre = spec.index_to_center(np.array([i, j, k]))
                prev = cur2prev[:3, :3] @ centre + cur2prev[:3, 3]
                u = (prev - np.asarray(spec.lower)) / np.asarray(spec.voxel_size) - 0.5
                base = np.floor(u).astype(int)
                frac = u - base
                for corner in np.ndindex(2, 2, 2):
                    idx = base + np.array(corner)
                    if np.any(idx < 0) or np.any(idx >= np.array([nx, ny, nz])):
                        continue
                    weight = np.prod(np.where(np.array(corner) == 1, frac, 1.0 - frac))
                    out[:, i, j, k] += weight * volume[:, idx[0], idx[1], idx[2]]
    return out
