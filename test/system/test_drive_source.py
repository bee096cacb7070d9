"""tacocc_ros.tooling.drive_source: the frame `tacocc drive` publishes, from the fixture folder or a converted bag."""

import json

import numpy as np
import pytest

pytest.importorskip("rclpy")

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes  # noqa: E402
from tacocc_core.config import load_preset  # noqa: E402
from tacocc_ros.node.calibration import load_calibration  # noqa: E402
from tacocc_ros.tooling.drive_source import (  # noqa: E402
    DriveSourceError,
    frame_from_bag,
    frame_from_fixture,
)


def test_the_fixture_frame_uses_the_rig_transforms(nuscenes_frame_dir, tmp_path):
    frame = frame_from_fixture(nuscenes_frame_dir)
    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    raw = np.fromfile(nuscenes_frame_dir / calib["lidar"]["file"], np.float32).reshape(-1, 5)
    np.testing.assert_array_equal(frame.points["x"], raw[:, 0])
    np.testing.assert_array_equal(frame.points["ring"], raw[:, 4])
    assert set(frame.cameras) == set(calib["cameras"]) and frame.image_sizes["CAM_FRONT"] == (900, 1600)
    lidar2ego = np.asarray(calib["lidar"]["lidar2ego"])
    written = load_calibration(frame.write_calibration(tmp_path / "calibration.yaml"))
    for name, cam in calib["cameras"].items():
        cam2lidar = np.linalg.inv(lidar2ego) @ np.asarray(cam["cam2ego"])
        np.testing.assert_allclose(written.cameras[name].cam2lidar, cam2lidar, atol=1e-6)  # YAML keeps 8 digits
        np.testing.assert_allclose(frame.intrinsics[name], cam["cam2img"])


def test_a_folder_without_calib_json_is_named(tmp_path):
    with pytest.raises(DriveSourceError, match=r"calib\.json: not found"):
        frame_from_fixture(tmp_path)


def test_the_first_frame_of_a_converted_bag(synthetic_dataset, tmp_path):
    [bag] = convert_nuscenes(
        synthetic_dataset, "v1.0-mini", tmp_path, ["synth-0003-0000"], ConvertOptions(progress=False)
    )
    cameras = tuple(load_preset("demo").cameras.names)
    frame, calibration = frame_from_bag(bag, cameras)
    assert calibration.name == "calibration.yaml" and calibration.is_file()
    assert frame.cameras == cameras and len(frame.points) > 1000
    assert all(frame.jpegs[c].startswith(b"\xff\xd8\xff") for c in cameras)
    assert frame.image_sizes["CAM_FRONT"] == (90, 160)
    assert all(frame.intrinsics[c][0, 0] > 0 for c in cameras)
    assert np.isfinite(frame.ego2global).all() and not np.allclose(frame.ego2global, np.eye(4))
    (bag / "calibration.yaml").unlink()
    with pytest.raises(DriveSourceError, match="calibration.yaml: not found"):
        frame_from_bag(bag, cameras)
