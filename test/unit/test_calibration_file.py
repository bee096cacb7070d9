"""tacocc_core/rig/calibration_file.py: the one schema round-trips (label grid, image sizes), the old
`tacocc_calibration_v1` layout of converted bags still reads with a note, and `--check --out` rewrites it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from tacocc_core.cli import main as tacocc
from tacocc_core.geometry import make_transform
from tacocc_core.labels import SURROUNDOCC_GRID
from tacocc_core.rig.calibration_file import (
    FORMAT,
    CalibrationError,
    CameraCalibration,
    RigCalibration,
    calibration_to_dict,
    load_calibration,
    save_calibration,
)

ROTATION = Rotation.from_euler("xyz", [0.1, -0.2, 1.3]).as_matrix()


def rig() -> RigCalibration:
    cams = {
        name: CameraCalibration(
            cam2lidar=make_transform(ROTATION, [i, -0.5, 0.25]),
            cam2img=np.array([[1266.4 + i, 0.0, 816.3], [0.0, 1266.4 + i, 491.5], [0.0, 0.0, 1.0]]),
            frame_id=name,
            image_size=(900, 1600),
        )
        for i, name in enumerate(["CAM_FRONT", "CAM_BACK"])
    }
    return RigCalibration(
        "LIDAR_TOP", cams, make_transform(ROTATION.T, [0.94, 0.0, 1.84]), "base_link", SURROUNDOCC_GRID
    )


def v1_document() -> dict:
    """A calibration.yaml as converted bags carried it before the schemas were one."""
    calib = rig()
    return {
        "format": "tacocc_calibration_v1",
        "base_frame": "base_link",
        "lidar_frame": "LIDAR_TOP",
        "lidar2base": calib.lidar2ego.tolist(),
        "cameras": {
            n: {"cam2lidar": c.cam2lidar.tolist(), "cam2img": c.cam2img.tolist(), "image_size": [900, 1600]}
            for n, c in calib.cameras.items()
        },
        "label_grid": {"x_range": [-50.0, 50.0], "y_range": [-50.0, 50.0], "z_range": [-5.0, 3.0], "voxel_size": 0.5},
    }


def assert_same(a: RigCalibration, b: RigCalibration) -> None:
    assert (a.lidar_frame, a.ego_frame, a.label_grid) == (b.lidar_frame, b.ego_frame, b.label_grid)
    np.testing.assert_array_equal(a.lidar2ego, b.lidar2ego)
    assert list(a.cameras) == list(b.cameras)
    for name, cam in a.cameras.items():
        other = b.cameras[name]
        np.testing.assert_array_equal(cam.cam2lidar, other.cam2lidar)
        np.testing.assert_array_equal(cam.cam2img, other.cam2img)
        assert (cam.frame_id, cam.image_size) == (other.frame_id, other.image_size)


def test_round_trip_keeps_every_value_the_camera_order_and_names_the_format(tmp_path):
    path = save_calibration(tmp_path / "calibration.yaml", rig())
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.yaml"]  # no temporary file left
    assert_same(load_calibration(tmp_path), rig())  # a bag folder finds its calibration.yaml
    data = yaml.safe_load(path.read_text())
    assert data["format"] == FORMAT == "tacocc_calibration_v2"
    assert data["label_grid"] == v1_document()["label_grid"]
    assert data["cameras"]["CAM_BACK"]["image_size"] == [900, 1600]


def test_label_grid_and_image_size_are_optional(tmp_path):
    bare = RigCalibration("lidar", {"c": CameraCalibration(np.eye(4), np.eye(3), "c_optical")})
    data = calibration_to_dict(bare)
    assert "label_grid" not in data and "image_size" not in data["cameras"]["c"]
    back = load_calibration(save_calibration(tmp_path / "bare.yaml", bare))
    assert back.label_grid is None and back.cameras["c"].image_size is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="v0"), "format is 'v0'"),
        (
            lambda d: d["cameras"]["CAM_FRONT"].update(image_size=[900]),
            "CAM_FRONT.image_size: expected [height, width]",
        ),
        (lambda d: d["label_grid"].update(voxel_size=0.3), "label_grid: grid ranges"),
        (lambda d: d["label_grid"].pop("z_range"), "label_grid: missing key 'z_range'"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, change, message):
    data = calibration_to_dict(rig())
    change(data)
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_an_old_v1_file_reads_as_the_same_rig_with_a_note_naming_it(tmp_path, caplog):
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(v1_document(), sort_keys=False))
    notes: list[str] = []
    assert_same(load_calibration(path, note=notes.append), rig())
    assert len(notes) == 1 and notes[0].startswith(f"{path}: old tacocc_calibration_v1 layout, read as {FORMAT}")
    with caplog.at_level(logging.WARNING):
        load_calibration(path)  # without a sink the note goes to the module's logger
    assert "old tacocc_calibration_v1 layout" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("lidar2base"), "missing key 'lidar2base' (tacocc_calibration_v1 layout)"),
        (lambda d: d["cameras"]["CAM_BACK"].pop("image_size"), "cameras.CAM_BACK: missing key 'image_size'"),
        (lambda d: d["cameras"]["CAM_BACK"]["cam2lidar"][0].__setitem__(0, 2.0), "CAM_BACK.cam2lidar: not a rigid"),
    ],
)
def test_bad_v1_files_name_the_file_and_key(tmp_path, change, message):
    data = v1_document()
    change(data)
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CalibrationError) as info:
        load_calibration(path, note=lambda _line: None)
    assert str(path) in str(info.value) and message in str(info.value)


def test_check_with_out_rewrites_an_old_file_in_the_current_layout(tmp_path, capsys):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(v1_document(), sort_keys=False))
    tacocc(["calibration", "--check", str(old), "--out", str(new)])
    captured = capsys.readouterr()
    assert "old tacocc_calibration_v1 layout" in captured.err and f"wrote {new}" in captured.out
    assert yaml.safe_load(new.read_text())["format"] == FORMAT
    notes: list[str] = []
    assert_same(load_calibration(new, note=notes.append), rig())
    assert not notes
