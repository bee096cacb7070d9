"""Checks a person can read on a calibration file: cameras present, rigid transforms, cameras facing their names.

Frames: the camera frame is the optical one (x right, y down, z forward, the optical axis); the ego frame
is REP 103's base_link (x forward, y left, z up). A camera named after directions (FRONT, BACK, LEFT,
RIGHT in its name, as nuScenes' `CAM_FRONT_LEFT`) must look that way in the ego frame: its optical axis,
`lidar2ego @ cam2lidar` applied to +z, projected on the ground plane, within `max_angle_deg` of the
direction the name says (FRONT +x, BACK -x, LEFT +y, RIGHT -y, combined ones in between). A wrong
`lidar2ego` (nuScenes' LiDAR has x right, y forward) fails this check, and so does a transform given
in the inverse direction (`lidar2cam` where `cam2lidar` is meant) for a camera looking sideways or at
an angle; a camera looking straight back has the same optical axis both ways, so there it cannot tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tacocc_core.rig.calibration_file import RigCalibration

DIRECTIONS = {"FRONT": (1.0, 0.0), "BACK": (-1.0, 0.0), "LEFT": (0.0, 1.0), "RIGHT": (0.0, -1.0)}


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, whether it holds, the numbers."""

    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.what}: {self.detail}"


def named_direction(camera: str) -> np.ndarray | None:
    """The ground-plane unit direction (x forward, y left) a camera's name says, or None if it says none."""
    words = camera.upper().replace("-", "_").split("_")
    vector = np.sum([DIRECTIONS[w] for w in words if w in DIRECTIONS] or [(0.0, 0.0)], axis=0)
    norm = np.linalg.norm(vector)
    return None if norm < 1e-9 else vector / norm


def rotation_problem(matrix: np.ndarray, tolerance: float = 1e-4) -> str | None:
    """Why a (4, 4) is not a proper rigid transform (orthonormal, det +1, last row 0 0 0 1), or None."""
    rotation = matrix[:3, :3]
    error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
    if error > tolerance:
        return f"rotation not orthonormal (max |R R^T - I| = {error:.2e})"
    if np.linalg.det(rotation) < 0:
        return "rotation is a reflection (det -1)"
    if not np.allclose(matrix[3], [0, 0, 0, 1]):
        return f"last row is {matrix[3].tolist()}, expected [0, 0, 0, 1]"
    return None


def optical_axis_in_ego(rig: RigCalibration, camera: str) -> np.ndarray:
    """(3,) unit optical axis (+z of the camera) of `camera` in the ego frame."""
    cam2ego = np.asarray(rig.lidar2ego) @ rig.cameras[camera].cam2lidar
    return cam2ego[:3, :3] @ np.array([0.0, 0.0, 1.0])


def check_rig(rig: RigCalibration, cameras: Sequence[str] = (), max_angle_deg: float = 60.0) -> list[CheckResult]:
    """Every check on `rig`; `cameras` are those that must be present (e.g. the model config's)."""
    results = []
    missing = [c for c in cameras if c not in rig.cameras]
    results.append(
        CheckResult(
            "cameras present",
            not missing,
            f"missing {', '.join(missing)}" if missing else f"{len(rig.cameras)}: {', '.join(rig.cameras)}",
        )
    )
    problem = rotation_problem(np.asarray(rig.lidar2ego))
    results.append(CheckResult("lidar2ego rigid", problem is None, problem or "orthonormal, det +1"))
    for name, cam in rig.cameras.items():
        problem = rotation_problem(cam.cam2lidar)
        results.append(CheckResult(f"{name} cam2lidar rigid", problem is None, problem or "orthonormal, det +1"))
        k = cam.cam2img
        focal_ok = k[0, 0] > 0 and k[1, 1] > 0 and np.allclose(k[2], [0, 0, 1])
        results.append(
            CheckResult(
                f"{name} intrinsics",
                bool(focal_ok),
                f"fx {k[0, 0]:.1f}, fy {k[1, 1]:.1f}, cx {k[0, 2]:.1f}, cy {k[1, 2]:.1f}",
            )
        )
        expected = named_direction(name)
        axis = optical_axis_in_ego(rig, name)
        yaw = np.degrees(np.arctan2(axis[1], axis[0]))
        if expected is None:
            results.append(
                CheckResult(f"{name} direction", True, f"axis yaw {yaw:.0f} deg (the name says no direction)")
            )
            continue
        ground = axis[:2] / max(np.linalg.norm(axis[:2]), 1e-9)
        angle = float(np.degrees(np.arccos(np.clip(ground @ expected, -1.0, 1.0))))
        want = np.degrees(np.arctan2(expected[1], expected[0]))
        ok = angle <= max_angle_deg and np.linalg.norm(axis[:2]) > 0.5
        results.append(
            CheckResult(
                f"{name} direction",
                bool(ok),
                f"optical axis yaw {yaw:.0f} deg in the ego frame (x forward, y left), pitch "
                f"{np.degrees(np.arcsin(np.clip(axis[2], -1, 1))):.0f} deg; the name says {want:.0f} deg, "
                f"{angle:.0f} deg off (limit {max_angle_deg:.0f})"
                + ("" if ok else "; is cam2lidar inverted, or lidar2ego missing?"),
            )
        )
    return results
