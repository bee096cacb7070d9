"""tacocc_core.data.synthetic.rig: the built-in rig is a plausible nuScenes-like rig; calib files load."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.data.synthetic.rig import NUSCENES_IMAGE_SIZE, load_rig, surround_rig


def yaw_of_axis(cam2ego: np.ndarray) -> float:
    z = cam2ego[:3, 2]
    return float(np.degrees(np.arctan2(z[1], z[0])))


def test_builtin_rig_geometry():
    rig = load_rig(None)
    assert rig.cameras == (
        "CAM_FRONT",
        "CAM_FRONT_RIGHT",
        "CAM_BACK_RIGHT",
        "CAM_BACK",
        "CAM_BACK_LEFT",
        "CAM_FRONT_LEFT",
    )
    yaws = {name: yaw_of_axis(rig.cam2ego[name]) for name in rig.cameras}
    assert yaws["CAM_FRONT"] == pytest.approx(0.0, abs=1e-9)
    assert yaws["CAM_FRONT_LEFT"] == pytest.approx(55.0) and yaws["CAM_BACK_RIGHT"] == pytest.approx(-110.0)
    for name, pose in rig.cam2ego.items():
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
        assert pose[2, 1] == pytest.approx(-1.0), f"{name}: image rows must point down"
        k = rig.cam2img[name]
        assert k[0, 2] == NUSCENES_IMAGE_SIZE[1] / 2 and k[1, 2] == NUSCENES_IMAGE_SIZE[0] / 2
    # LIDAR_TOP as nuScenes: its y axis is the car's forward axis, x points right
    np.testing.assert_allclose(rig.lidar2ego[:3, 1], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(rig.lidar2ego[:3, 0], [0.0, -1.0, 0.0], atol=1e-12)
    # the cameras fire one after another within one LiDAR revolution (50 ms), clockwise from the front left
    order = sorted(rig.cameras, key=rig.camera_offset_us.get)
    assert order == ["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT"]
    assert all(-50_000 < v <= 0 for v in rig.camera_offset_us.values())


def test_neighbouring_cameras_overlap_so_the_surround_is_covered():
    rig = surround_rig()
    yaws = sorted(yaw_of_axis(rig.cam2ego[n]) % 360 for n in rig.cameras)
    half = {
        round(yaw_of_axis(rig.cam2ego[n]) % 360): np.degrees(np.arctan(800 / rig.cam2img[n][0, 0])) for n in rig.cameras
    }
    for a, b in zip(yaws, [*yaws[1:], yaws[0] + 360], strict=True):
        assert half[round(a)] + half[round(b % 360)] > b - a, f"gap between cameras at {a} and {b % 360} deg"


def test_builtin_rig_is_close_to_the_measured_nuscenes_rig(nuscenes_frame_dir):
    measured, ours = load_rig(nuscenes_frame_dir / "calib.json"), surround_rig()
    assert set(measured.cameras) == set(ours.cameras)
    for name in ours.cameras:
        assert yaw_of_axis(ours.cam2ego[name]) == pytest.approx(yaw_of_axis(measured.cam2ego[name]), abs=2.0), name
        np.testing.assert_allclose(ours.cam2ego[name][:3, 3], measured.cam2ego[name][:3, 3], atol=0.1, err_msg=name)
        assert ours.cam2img[name][0, 0] == pytest.approx(measured.cam2img[name][0, 0], rel=0.02), name
        assert ours.camera_offset_us[name] == pytest.approx(measured.camera_offset_us[name], abs=1500), name
    np.testing.assert_allclose(ours.lidar2ego, measured.lidar2ego, atol=0.03)
