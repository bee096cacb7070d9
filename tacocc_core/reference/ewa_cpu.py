"""Twin of `tacocc_core.render.ewa_cpu.rasterize_ewa`: float64 numpy, one pixel and one Gaussian at a time.

No tiles, no boxes, no vectorisation: every Gaussian in front of the camera is evaluated at every pixel, so
culling by box can only be checked, never copied. Rotations come from scipy, not from our own formula.
For tests on tiny images only.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from tacocc_core.render.ewa_cpu import EPS2D, FAR_PLANE, NEAR_PLANE
from tacocc_core.render.tile_composite import ALPHA_MAX, ALPHA_MIN, TRANSMITTANCE_MIN


def project_one(mean, quat_wxyz, scale, world2cam, cam2img, width, height):
    """One Gaussian into one camera -> (centre (2,), inverse 2D covariance (2, 2), depth) or None when culled."""
    rot_world = Rotation.from_quat([quat_wxyz[1], quat_wxyz[2], quat_wxyz[3], quat_wxyz[0]]).as_matrix()
    cov_world = rot_world @ np.diag(np.square(scale)) @ rot_world.T
    rot, trans = world2cam[:3, :3], world2cam[:3, 3]
    x, y, z = rot @ mean + trans
    if z < NEAR_PLANE or z > FAR_PLANE:
        return None
    fx, fy, cx, cy = cam2img[0, 0], cam2img[1, 1], cam2img[0, 2], cam2img[1, 2]
    # The Jacobian is taken where the ray is clamped to 1.3x the half-image (gsplat's persp_proj).
    half_x, half_y = 0.5 * width / fx, 0.5 * height / fy
    u_ray = min((width - cx) / fx + 0.3 * half_x, max(-(cx / fx + 0.3 * half_x), x / z))
    v_ray = min((height - cy) / fy + 0.3 * half_y, max(-(cy / fy + 0.3 * half_y), y / z))
    jac = np.array([[fx / z, 0.0, -fx * u_ray / z], [0.0, fy / z, -fy * v_ray / z]])
    cov2d = jac @ rot @ cov_world @ rot.T @ jac.T + EPS2D * np.eye(2)
    if np.linalg.det(cov2d) <= 0:
        return None
    centre = np.array([fx * x / z + cx, fy * y / z + cy])
    return centre, np.linalg.inv(cov2d), z


def rasterize_reference(means, quats, scales, opacities, colors, world2cam, cam2img, width, height):
    """Same arguments and results as `ewa_cpu.rasterize_ewa` (without the projection), as float64 numpy arrays."""
    means, quats, scales, opacities, colors, world2cam, cam2img = (
        np.asarray(a, dtype=np.float64) for a in (means, quats, scales, opacities, colors, world2cam, cam2img)
    )
    views, channels = world2cam.shape[0], colors.shape[-1]
    image = np.zeros((views, height, width, channels))
    alpha_out = np.zeros((views, height, width))
    for v in range(views):
        seen = []
        for g in range(means.shape[0]):
            projected = project_one(means[g], quats[g], scales[g], world2cam[v], cam2img[v], width, height)
            if projected is not None:
                seen.append((projected[2], g, projected[0], projected[1]))
        seen.sort(key=lambda item: item[0])  # nearest first
        for row in range(height):
            for col in range(width):
                pixel = np.array([col + 0.5, row + 0.5])
                transmittance, acc = 1.0, np.zeros(channels)
                for _, g, centre, inv_cov in seen:
                    d = centre - pixel
                    power = 0.5 * d @ inv_cov @ d
                    if power < 0:
                        continue
                    alpha = min(ALPHA_MAX, opacities[g] * np.exp(-power))
                    if alpha < ALPHA_MIN:
                        continue
                    if transmittance * (1.0 - alpha) <= TRANSMITTANCE_MIN:
                        break
                    acc += colors[v, g] * alpha * transmittance
                    transmittance *= 1.0 - alpha
                image[v, row, col] = acc
                alpha_out[v, row, col] = 1.0 - transmittance
    return image, alpha_out
