"""tacocc_core.rig.calibration_file (the node's tacocc_ros.node.calibration): the YAML round trip and its errors."""

import numpy as np
import pytest
import yaml

from tacocc_core.geometry import make_transform
from tacocc_core.rig.calibration_file import (
    CalibrationError,
    CameraCalibration,
    RigCalibration,
    calibration_to_dict,
    load_calibration,
    save_calibration,
)


def rig() -> RigCalibration:
    k = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
    rot = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    cams = {"CAM_FRONT": CameraCalibration(make_transform(rot, [0.0, 1.7, -0.3]), k, "cam_front_optical")}
    return RigCalibration("LIDAR_TOP", cams, make_transform(np.eye(3), [0.94, 0.0, 1.84]), "base_link")


def test_save_then_load_gives_the_same_rig(tmp_path):
    path = tmp_path / "calib.yaml"
    save_calibration(path, rig())
    back = load_calibration(path)
    assert back.lidar_frame == "LIDAR_TOP" and back.ego_frame == "base_link"
    np.testing.assert_array_equal(back.lidar2ego, rig().lidar2ego)
    cam = back.cameras["CAM_FRONT"]
    np.testing.assert_array_equal(cam.cam2lidar, rig().cameras["CAM_FRONT"].cam2lidar)
    np.testing.assert_array_equal(cam.cam2img, rig().cameras["CAM_FRONT"].cam2img)
    assert cam.frame_id == "cam_front_optical"
    assert [p.name for p in tmp_path.iterdir()] == ["calib.yaml"]  # no temp file left


def test_optional_keys_take_their_defaults(tmp_path):
    data = calibration_to_dict(rig())
    del data["lidar2ego"], data["ego_frame"], data["cameras"]["CAM_FRONT"]["frame_id"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    back = load_calibration(path)
    np.testing.assert_array_equal(back.lidar2ego, np.eye(4))
    assert back.ego_frame == "base_link" and back.cameras["CAM_FRONT"].frame_id == "CAM_FRONT"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("lidar_frame"), "lidar_frame must be a non-empty string"),
        (lambda d: d.update(extra=1), r"unknown keys \['extra'\]"),
        (lambda d: d["cameras"]["CAM_FRONT"].pop("cam2img"), "cameras.CAM_FRONT: missing cam2img"),
        (lambda d: d["cameras"]["CAM_FRONT"].update(cam2img=[[1, 0], [0, 1]]), r"cam2img: expected a 3x3 matrix"),
        (lambda d: d["cameras"]["CAM_FRONT"]["cam2lidar"][0].__setitem__(0, 2.0), "cam2lidar: not a rigid"),
        (lambda d: d.update(lidar2ego="identity"), "lidar2ego: expected a 4x4 matrix"),
        (lambda d: d.update(cameras={}), "cameras must be a non-empty mapping"),
    ],
)
def test_bad_files_name_the_key(tmp_path, edit, message):
    data = calibration_to_dict(rig())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match=message) as err:
        load_calibration(path)
    assert "bad.yaml" in str(err.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(CalibrationError, match="cannot read calibration file"):
        load_calibration(tmp_path / "absent.yaml")
    (tmp_path / "x.yaml").write_text("cameras: [unclosed")
    with pytest.raises(CalibrationError, match="not valid YAML"):
        load_calibration(tmp_path / "x.yaml")


def test_the_file_the_bag_converter_writes_is_the_node_schema(tmp_path, synthetic_dataset):
    """One calibration file for both: what `tacocc convert-nuscenes` writes is the layout the node reads."""
    from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
    from tacocc_core.labels import SURROUNDOCC_GRID
    from tacocc_core.rig.calibration_file import FORMAT, calibration_from_dict

    bags = convert_nuscenes(synthetic_dataset, "v1.0-mini", tmp_path / "bags", options=ConvertOptions(progress=False))
    data = yaml.safe_load((bags[0] / "calibration.yaml").read_text())
    assert data["format"] == FORMAT and set(data) == {"format", "lidar_frame", "ego_frame", "lidar2ego", "cameras",
                                                       "label_grid"}  # fmt: skip
    notes: list[str] = []
    rig = load_calibration(bags[0], note=notes.append)  # a bag folder finds its calibration.yaml
    assert not notes, notes
    assert rig.lidar_frame == "LIDAR_TOP" and rig.ego_frame == "base_link" and rig.label_grid == SURROUNDOCC_GRID
    strict = calibration_from_dict(data, "converted")  # the node's own validation, no conversion
    for name, cam in rig.cameras.items():
        assert cam.frame_id == name and cam.image_size is not None and min(cam.image_size) > 0
        np.testing.assert_array_equal(cam.cam2lidar, strict.cameras[name].cam2lidar)
