"""tacocc_core/bags/calibration.py: the calibration file beside a bag round-trips and bad files are named."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from tacocc_core.bags.calibration import (
    BagCalibration,
    CalibrationError,
    CameraCalibration,
    calibration_to_dict,
    read_calibration,
    write_calibration,
)
from tacocc_core.geometry import make_transform
from tacocc_core.labels import SURROUNDOCC_GRID


def rig() -> BagCalibration:
    rotation = Rotation.from_euler("xyz", [0.1, -0.2, 1.3]).as_matrix()
    cams = {
        name: CameraCalibration(
            cam2lidar=make_transform(rotation, [i, -0.5, 0.25]),
            cam2img=np.array([[1266.4 + i, 0.0, 816.3], [0.0, 1266.4 + i, 491.5], [0.0, 0.0, 1.0]]),
            image_size=(900, 1600),
        )
        for i, name in enumerate(["CAM_FRONT", "CAM_BACK"])
    }
    return BagCalibration(
        lidar2base=make_transform(rotation.T, [0.94, 0.0, 1.84]), cameras=cams, label_grid=SURROUNDOCC_GRID
    )


def test_round_trip_keeps_every_value_and_the_camera_order(tmp_path):
    calib = rig()
    path = write_calibration(tmp_path / "calibration.yaml", calib)
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.yaml"]  # no temporary file left
    back = read_calibration(tmp_path)  # a bag folder finds its calibration.yaml
    assert list(back.cameras) == ["CAM_FRONT", "CAM_BACK"]
    np.testing.assert_array_equal(back.lidar2base, calib.lidar2base)
    for name, cam in calib.cameras.items():
        np.testing.assert_array_equal(back.cameras[name].cam2lidar, cam.cam2lidar)
        np.testing.assert_array_equal(back.cameras[name].cam2img, cam.cam2img)
        assert back.cameras[name].image_size == (900, 1600)
    assert back.label_grid == SURROUNDOCC_GRID
    assert (back.lidar_frame, back.base_frame) == ("LIDAR_TOP", "base_link")
    assert yaml.safe_load(path.read_text())["label_grid"] == {
        "x_range": [-50.0, 50.0], "y_range": [-50.0, 50.0], "z_range": [-5.0, 3.0], "voxel_size": 0.5
    }  # fmt: skip


def broken(doc: dict, change) -> dict:
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="v0"), "format is 'v0'"),
        (lambda d: d.pop("lidar2base"), "missing key 'lidar2base'"),
        (lambda d: d["cameras"]["CAM_BACK"].pop("cam2img"), "cameras.CAM_BACK: missing key 'cam2img'"),
        (
            lambda d: d["cameras"]["CAM_FRONT"].update(cam2img=[[1, 0], [0, 1]]),
            "CAM_FRONT.cam2img: expected a finite 3x3",
        ),
        (lambda d: d["cameras"]["CAM_FRONT"]["cam2lidar"][0].__setitem__(0, 2.0), "CAM_FRONT.cam2lidar: not a rigid"),
        (
            lambda d: d["cameras"]["CAM_FRONT"].update(image_size=[900]),
            "CAM_FRONT.image_size: expected [height, width]",
        ),
        (lambda d: d.update(cameras={}), "cameras must be a non-empty mapping"),
        (lambda d: d["label_grid"].update(voxel_size=0.3), "label_grid: grid ranges"),
        (lambda d: d.update(lidar_frame=""), "lidar_frame must be a non-empty frame name"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, change, message):
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(broken(calibration_to_dict(rig()), change)))
    with pytest.raises(CalibrationError) as info:
        read_calibration(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(CalibrationError, match="calibration.yaml: calibration file not found"):
        read_calibration(tmp_path)
    (tmp_path / "calibration.yaml").write_text("cameras: [")
    with pytest.raises(CalibrationError, match="not a readable YAML file"):
        read_calibration(tmp_path / "calibration.yaml")
