"""tacocc_core.rig.sources and `tacocc calibration`: the rig from nuScenes, a bag and a calib.json, not a sample's.

The trap this pins: a sample's `lidar2cam` goes through the ego poses at the LiDAR and the camera stamps,
so it holds the vehicle's motion between them; the calibration file must hold the rig transform.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tacocc_core import cli
from tacocc_core.geometry import invert_transform, pose_to_transform
from tacocc_core.rig import sources
from tacocc_core.rig.calibration_file import CalibrationError, load_calibration


@pytest.fixture(scope="module")
def nusc(synthetic_dataset):
    return sources.open_nuscenes(synthetic_dataset, "v1.0-mini")


@pytest.fixture(scope="module")
def tf_bag(nusc, synthetic_dataset, tmp_path_factory):
    """The first scene converted, its calibration.yaml moved aside (not needed: /tf_static says it all)."""
    from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes

    out = tmp_path_factory.mktemp("rig_bags")
    options = ConvertOptions(labels="none", progress=False)
    (bag,) = convert_nuscenes(synthetic_dataset, "v1.0-mini", out / "bags", [nusc.scene[0]["name"]], options)
    (bag / "calibration.yaml").rename(out / "converter_calibration.yaml")
    return bag


def calibrated_sensor(nusc, sample: dict, channel: str) -> np.ndarray:
    cs = nusc.get("calibrated_sensor", nusc.get("sample_data", sample["data"][channel])["calibrated_sensor_token"])
    return pose_to_transform(cs["translation"], cs["rotation"])


def test_calib_json_gives_the_rig_not_the_samples_lidar2cam(nuscenes_frame_dir, tmp_path):
    path = nuscenes_frame_dir / "calib.json"
    calib = json.loads(path.read_text())
    lidar2ego = np.asarray(calib["lidar"]["lidar2ego"])
    out = tmp_path / "calibration.yaml"
    assert cli.main(["calibration", "--calib-json", str(path), "--out", str(out), "--config", "demo"]) == 0
    rig = load_calibration(out)
    offsets = []
    for name, entry in calib["cameras"].items():
        expected = invert_transform(lidar2ego) @ np.asarray(entry["cam2ego"])
        np.testing.assert_allclose(rig.cameras[name].cam2lidar, expected, atol=1e-9)
        sample_cam2lidar = invert_transform(np.asarray(entry["lidar2cam"]))  # motion included
        offsets.append(np.linalg.norm(sample_cam2lidar[:3, 3] - expected[:3, 3]))
    # The real keyframe's ego moved between the LiDAR and camera stamps: the sample's transforms differ.
    assert max(offsets) > 0.05, offsets


def test_nuscenes_scene_gives_the_calibrated_sensor_rig_and_differs_from_a_samples_lidar2cam(
    nusc, synthetic_dataset, tmp_path
):
    scene = nusc.scene[0]
    first = nusc.get("sample", scene["first_sample_token"])
    out = tmp_path / "calibration.yaml"
    argv = ["calibration", "--nuscenes", str(synthetic_dataset), "--scene", scene["name"], "--out", str(out)]
    assert cli.main([*argv, "--config", "tiny"]) == 0
    rig = load_calibration(out)
    lidar2ego = calibrated_sensor(nusc, first, "LIDAR_TOP")
    np.testing.assert_allclose(rig.lidar2ego, lidar2ego, atol=1e-9)
    gaps = []
    for name, cam in rig.cameras.items():
        expected = invert_transform(lidar2ego) @ calibrated_sensor(nusc, first, name)
        np.testing.assert_allclose(cam.cam2lidar, expected, atol=1e-9)
        sample = nusc.get("sample", scene["first_sample_token"])
        while sample["next"]:  # every keyframe's motion-affected transform is off the rig by the motion
            sample = nusc.get("sample", sample["next"])
            sample_cam2lidar = invert_transform(sources.sample_lidar2cam(nusc, sample["token"], name))
            gaps.append(np.linalg.norm(sample_cam2lidar[:3, 3] - cam.cam2lidar[:3, 3]))
    assert min(gaps) > 1e-3 and max(gaps) > 0.05, gaps


def test_a_bags_tf_static_gives_the_same_rig(nusc, tf_bag, tmp_path):
    bag = tf_bag
    from_nuscenes = sources.rig_from_nuscenes(nusc, nusc.scene[0]["name"])
    from_tf = sources.rig_from_bag(bag)  # /tf_static through the TF logic, K from camera_info
    assert set(from_tf.cameras) == set(from_nuscenes.cameras)
    for name, cam in from_nuscenes.cameras.items():
        np.testing.assert_allclose(from_tf.cameras[name].cam2lidar, cam.cam2lidar, atol=1e-6)
        np.testing.assert_allclose(from_tf.cameras[name].cam2img, cam.cam2img, atol=1e-9)
        assert from_tf.cameras[name].image_size == (90, 160)  # (height, width) of the camera_info
    np.testing.assert_allclose(from_tf.lidar2ego, from_nuscenes.lidar2ego, atol=1e-6)
    assert from_tf.label_grid is None
    out = tmp_path / "calibration.yaml"
    assert cli.main(["calibration", "--bag", str(bag), "--out", str(out), "--cameras", "CAM_FRONT", "CAM_BACK"]) == 0
    assert list(load_calibration(out).cameras) == ["CAM_FRONT", "CAM_BACK"]


def test_a_rig_split_over_two_static_broadcasters_is_read_whole(nusc, tf_bag, tmp_path):
    """Two /tf_static messages, the second one at the end of the bag: the rig needs both."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from tacocc_core.bags.messages import TF_MESSAGE, TYPESTORE, serialize
    from tacocc_core.bags.reading import BagReader

    bag = tf_bag
    split = tmp_path / "split"
    with BagReader(bag) as reader, Writer(split, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, i.msgtype, typestore=TYPESTORE) for t, i in reader.topics.items()}
        end = reader.start_ns + reader.duration_ns
        for raw in reader.messages():
            if raw.topic != "/tf_static":
                writer.write(conns[raw.topic], raw.stamp_ns, raw.data)
                continue
            transforms = reader.decode(raw).transforms
            late = [t for t in transforms if t.child_frame_id == "CAM_BACK"]
            first = [t for t in transforms if t.child_frame_id != "CAM_BACK"]
            tf_message = TYPESTORE.types[TF_MESSAGE]
            writer.write(conns[raw.topic], raw.stamp_ns, serialize(tf_message(transforms=first)))
            writer.write(conns[raw.topic], end, serialize(tf_message(transforms=late)))
    whole = sources.rig_from_bag(split)
    assert "CAM_BACK" in whole.cameras
    expected = sources.rig_from_nuscenes(nusc, nusc.scene[0]["name"])
    np.testing.assert_allclose(whole.cameras["CAM_BACK"].cam2lidar, expected.cameras["CAM_BACK"].cam2lidar, atol=1e-6)


def test_bad_sources_are_named(nusc, synthetic_dataset, tmp_path, capsys):
    with pytest.raises(CalibrationError, match="no scene named 'scene-9999'"):
        sources.rig_from_nuscenes(nusc, "scene-9999")
    with pytest.raises(CalibrationError, match="no camera CAM_TOP"):
        sources.rig_from_nuscenes(nusc, nusc.scene[0]["name"], ["CAM_TOP"])
    argv = ["calibration", "--nuscenes", str(synthetic_dataset), "--out", str(tmp_path / "c.yaml")]
    assert cli.main(argv) == 2
    assert "--nuscenes needs --scene NAME" in capsys.readouterr().err
    bad = tmp_path / "calib.json"
    bad.write_text(json.dumps({"lidar": {}, "cameras": {}}))
    assert cli.main(["calibration", "--calib-json", str(bad), "--out", str(tmp_path / "c.yaml")]) == 2
    assert "expected lidar.lidar2ego" in capsys.readouterr().err
    assert not (tmp_path / "c.yaml").exists()


def test_a_bag_without_tf_static_falls_back_to_the_calibration_yaml_beside_it(nusc, synthetic_dataset, tmp_path):
    from rosbags.rosbag2 import Writer

    from tacocc_core.bags import messages as m
    from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes

    scene = nusc.scene[0]["name"]
    (converted,) = convert_nuscenes(
        synthetic_dataset, "v1.0-mini", tmp_path / "bags", [scene], ConvertOptions(labels="none", progress=False)
    )
    bag = tmp_path / "no_tf"
    with Writer(bag, version=8) as writer:  # a bag with one camera_info and no /tf_static
        conn = writer.add_connection("/CAM_FRONT/camera_info", m.CAMERA_INFO, typestore=m.TYPESTORE)
        writer.write(conn, 1_000, m.serialize(m.camera_info(1_000, "CAM_FRONT", np.eye(3), 90, 160)))
    with pytest.raises(CalibrationError, match="has no /tf_static and there is no"):
        sources.rig_from_bag(bag)
    (converted / "calibration.yaml").rename(bag / "calibration.yaml")
    rig = sources.rig_from_bag(bag, ["CAM_FRONT"])
    expected = sources.rig_from_nuscenes(nusc, scene, ["CAM_FRONT"])
    np.testing.assert_allclose(rig.cameras["CAM_FRONT"].cam2lidar, expected.cameras["CAM_FRONT"].cam2lidar, atol=1e-9)
    np.testing.assert_allclose(rig.lidar2ego, expected.lidar2ego, atol=1e-9)
