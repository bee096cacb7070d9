"""tacocc_core.rig.check and `tacocc calibration --check`: cameras present, rigid, facing where their names say."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core import cli
from tacocc_core.geometry import invert_transform
from tacocc_core.rig import sources
from tacocc_core.rig.calibration_file import CameraCalibration, RigCalibration, save_calibration
from tacocc_core.rig.check import check_rig, named_direction


@pytest.fixture(scope="module")
def real_rig(nuscenes_frame_dir) -> RigCalibration:
    return sources.rig_from_calib_json(nuscenes_frame_dir / "calib.json")


def failures(rig: RigCalibration, cameras=()) -> list[str]:
    return [r.line() for r in check_rig(rig, cameras) if not r.ok]


def with_camera(rig: RigCalibration, name: str, cam2lidar: np.ndarray) -> RigCalibration:
    cams = dict(rig.cameras)
    cams[name] = CameraCalibration(cam2lidar, cams[name].cam2img, name)
    return RigCalibration(rig.lidar_frame, cams, rig.lidar2ego, rig.ego_frame)


def test_names_say_directions():
    np.testing.assert_allclose(named_direction("CAM_FRONT"), [1, 0])
    np.testing.assert_allclose(named_direction("CAM_BACK_LEFT"), np.array([-1, 1]) / np.sqrt(2))
    assert named_direction("cam0") is None


def test_the_real_rig_passes_every_check(real_rig):
    assert failures(real_rig, ("CAM_FRONT", "CAM_BACK")) == []


def test_an_inverted_transform_fails_the_direction_check(real_rig):
    """lidar2cam written where cam2lidar belongs: the rotation is still orthonormal, the axis is wrong."""
    wrong = with_camera(real_rig, "CAM_FRONT_LEFT", invert_transform(real_rig.cameras["CAM_FRONT_LEFT"].cam2lidar))
    lines = failures(wrong)
    assert len(lines) == 1 and lines[0].startswith("FAIL CAM_FRONT_LEFT direction"), lines


def test_a_missing_lidar2ego_turns_every_camera(real_rig):
    """nuScenes' LiDAR has x right, y forward: with lidar2ego left out (identity) no camera faces its name."""
    rig = RigCalibration(real_rig.lidar_frame, real_rig.cameras, np.eye(4))
    lines = failures(rig)
    assert {line.split()[1] for line in lines} == set(real_rig.cameras), lines
    assert "lidar2ego missing?" in lines[0]


def test_reflections_missing_cameras_and_bad_intrinsics_fail(real_rig):
    mirrored = real_rig.cameras["CAM_BACK"].cam2lidar.copy()
    mirrored[:3, 0] *= -1
    assert "rotation is a reflection" in failures(with_camera(real_rig, "CAM_BACK", mirrored))[0]
    assert failures(real_rig, ("CAM_FRONT", "CAM_TOP"))[0].startswith("FAIL cameras present: missing CAM_TOP")
    cams = dict(real_rig.cameras)
    cams["CAM_FRONT"] = CameraCalibration(cams["CAM_FRONT"].cam2lidar, np.zeros((3, 3)), "CAM_FRONT")
    assert failures(RigCalibration("LIDAR_TOP", cams, real_rig.lidar2ego))[0].startswith("FAIL CAM_FRONT intrinsics")


def test_check_command_exit_status(real_rig, tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    save_calibration(good, real_rig)
    wrong = invert_transform(real_rig.cameras["CAM_FRONT_LEFT"].cam2lidar)
    save_calibration(bad, with_camera(real_rig, "CAM_FRONT_LEFT", wrong))
    assert cli.main(["calibration", "--check", str(good), "--config", "nuscenes_r50_256x704"]) == 0
    assert "all 20 checks passed" in capsys.readouterr().out
    assert cli.main(["calibration", "--check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL CAM_FRONT_LEFT direction" in out and "1 of 20 checks failed" in out
    assert cli.main(["calibration", "--check", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
