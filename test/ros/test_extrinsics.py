"""tacocc_ros.node.extrinsics: the choice of source, what each says it is, and the calibration answers."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.rig import sources
from tacocc_ros.node import extrinsics
from tacocc_ros.node.extrinsics import CalibrationExtrinsics, make_extrinsics


@pytest.fixture(scope="module")
def real_rig(nuscenes_frame_dir):
    return sources.rig_from_calib_json(nuscenes_frame_dir / "calib.json")


def test_calibration_source_answers_from_the_file_and_names_it(real_rig):
    chosen = make_extrinsics(None, "calibration", real_rig, calibration_path="/etc/rig.yaml")
    assert isinstance(chosen, CalibrationExtrinsics)
    assert chosen.description == "calibration file /etc/rig.yaml"
    np.testing.assert_array_equal(
        chosen.cam2lidar("CAM_FRONT", "ignored", "LIDAR_TOP"), real_rig.cameras["CAM_FRONT"].cam2lidar
    )
    np.testing.assert_array_equal(chosen.lidar2ego("LIDAR_TOP"), real_rig.lidar2ego)
    assert chosen.cam2lidar("CAM_TOP", "CAM_TOP", "LIDAR_TOP") is None


@pytest.mark.skipif(extrinsics.have_tf2_ros(), reason="tf2_ros is importable here: auto picks TF")
def test_without_tf2_ros_auto_takes_the_file_and_tf_is_an_error(real_rig):
    assert isinstance(make_extrinsics(None, "auto", real_rig, calibration_path="rig.yaml"), CalibrationExtrinsics)
    with pytest.raises(ValueError, match=r"tf2_ros is not importable\): set the `calibration` parameter"):
        make_extrinsics(None, "auto", None)
    with pytest.raises(ImportError, match="tf2_ros is not importable"):
        make_extrinsics(None, "tf", real_rig)
    with pytest.raises(ValueError, match="auto, tf or calibration"):
        make_extrinsics(None, "urdf", real_rig)
