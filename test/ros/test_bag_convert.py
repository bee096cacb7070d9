"""tacocc_core/bags/convert.py: generated nuScenes scenes -> bags, read back with rosbags and with the mcap library."""

from __future__ import annotations

import re
import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from nuscenes.nuscenes import NuScenes
from scipy.spatial.transform import Rotation

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
from tacocc_core.bags.reading import BagReader, require_sensor_topics
from tacocc_core.cli import main
from tacocc_core.config import NUSCENES_CAMERAS
from tacocc_core.data.nuscenes_reader import DataError
from tacocc_core.geometry import invert_transform, pose_to_transform
from tacocc_core.labels import SURROUNDOCC_GRID, load_surroundocc
from tacocc_core.rig.calibration_file import load_calibration
from tacocc_ros.messages.pointcloud import cloud_to_array

VERSION = "v1.0-mini"
Item = namedtuple("Item", "log_time msg")
QUIET = ConvertOptions(progress=False)


@pytest.fixture(scope="module")
def nusc(synthetic_dataset) -> NuScenes:
    return NuScenes(version=VERSION, dataroot=str(synthetic_dataset), verbose=False)


@pytest.fixture(scope="module")
def bags(synthetic_dataset, tmp_path_factory) -> list[Path]:
    return convert_nuscenes(synthetic_dataset, VERSION, tmp_path_factory.mktemp("bags"), options=QUIET)


def chain(nusc: NuScenes, scene: dict, channel: str) -> list[dict]:
    """Every sample_data of a channel in the scene, by walking the chain from its first keyframe."""
    sd = nusc.get("sample_data", nusc.get("sample", scene["first_sample_token"])["data"][channel])
    while sd["prev"]:
        sd = nusc.get("sample_data", sd["prev"])
    out = [sd]
    while out[-1]["next"]:
        out.append(nusc.get("sample_data", out[-1]["next"]))
    return out


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def wxyz_to_xyzw(q) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]])


def same_rotation(xyzw_a, xyzw_b) -> bool:
    return abs(abs(float(np.dot(xyzw_a, xyzw_b))) - 1.0) < 1e-6


def read_all(bag: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list] = {}
    with BagReader(bag) as reader:
        for raw in reader.messages():
            out.setdefault(raw.topic, []).append((raw.stamp_ns, reader.decode(raw)))
    return out


def test_one_bag_per_scene_written_in_place(bags, nusc):
    assert [b.name for b in bags] == [s["name"] for s in nusc.scene]
    for bag in bags:
        assert sorted(p.name for p in bag.iterdir()) == ["calibration.yaml", "metadata.yaml", f"{bag.name}.mcap"]
    assert not [p for p in bags[0].parent.iterdir() if p.name.startswith(".")], "temporary folders left"


def test_rosbags_read_back_equals_the_source_samples(bags, nusc, synthetic_dataset):
    scene = nusc.scene[0]
    messages = read_all(bags[0])
    root = Path(synthetic_dataset)

    lidar = chain(nusc, scene, "LIDAR_TOP")
    assert len(messages["/LIDAR_TOP"]) == len(lidar) == 4 * 3  # every sweep, not only the keyframes
    for (bag_stamp, msg), sd in zip(messages["/LIDAR_TOP"], lidar, strict=True):
        assert bag_stamp == stamp_ns(msg.header) == sd["timestamp"] * 1000
        assert msg.header.frame_id == "LIDAR_TOP"
        points = cloud_to_array(msg)
        source = np.fromfile(root / sd["filename"], dtype=np.float32).reshape(-1, 5)
        for column, name in enumerate(("x", "y", "z", "intensity", "ring")):
            np.testing.assert_array_equal(points[name], source[:, column])

    for camera in NUSCENES_CAMERAS:
        records = chain(nusc, scene, camera)
        images = messages[f"/{camera}/image_rect/compressed"]
        infos = messages[f"/{camera}/camera_info"]
        assert len(images) == len(infos) == len(records)
        for (bag_stamp, image), (_, info), sd in zip(images, infos, records, strict=True):
            assert bag_stamp == stamp_ns(image.header) == stamp_ns(info.header) == sd["timestamp"] * 1000
            assert image.header.frame_id == info.header.frame_id == camera
            assert image.format == "jpeg"
            assert bytes(image.data) == (root / sd["filename"]).read_bytes()
            k = np.asarray(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["camera_intrinsic"])
            np.testing.assert_array_equal(info.k.reshape(3, 3), k)
            np.testing.assert_array_equal(info.p.reshape(3, 4), np.c_[k, np.zeros(3)])
            assert (info.height, info.width) == (sd["height"], sd["width"]) == (90, 160)

    poses = {}
    for channel in ("LIDAR_TOP", *NUSCENES_CAMERAS):
        for sd in chain(nusc, scene, channel):
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
            poses[pose["timestamp"] * 1000] = pose
    odom = messages["/odom"]
    assert [s for s, _ in odom] == sorted(poses)
    for bag_stamp, msg in odom:
        pose = poses[bag_stamp]
        assert stamp_ns(msg.header) == bag_stamp
        assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        np.testing.assert_allclose([p.x, p.y, p.z], pose["translation"], rtol=0, atol=1e-9)
        assert same_rotation([q.x, q.y, q.z, q.w], wxyz_to_xyzw(pose["rotation"]))

    stamps = [s for topic in messages.values() for s, _ in topic]
    assert min(stamps) == messages["/tf_static"][0][0]


def test_odometry_twist_is_the_ego_speed_in_base_link(bags, nusc):
    speed = float(re.search(r"ego at ([0-9.]+) m/s", nusc.scene[0]["description"]).group(1))
    for _, msg in read_all(bags[0])["/odom"]:
        v, w = msg.twist.twist.linear, msg.twist.twist.angular
        np.testing.assert_allclose([v.x, v.y, v.z], [speed, 0.0, 0.0], atol=0.06)
        np.testing.assert_allclose([w.x, w.y, w.z], 0.0, atol=1e-6)


def test_static_transforms_and_calibration_file_match_calibrated_sensor(bags, nusc):
    scene = nusc.scene[0]
    first = nusc.get("sample", scene["first_sample_token"])

    def sensor2ego(channel: str) -> np.ndarray:
        sd = nusc.get("sample_data", first["data"][channel])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        return pose_to_transform(cs["translation"], cs["rotation"])

    [(_, tf)] = read_all(bags[0])["/tf_static"]
    by_child = {t.child_frame_id: t for t in tf.transforms}
    assert set(by_child) == {"LIDAR_TOP", *NUSCENES_CAMERAS}
    for child, t in by_child.items():
        expected = sensor2ego(child)
        assert t.header.frame_id == "base_link"
        tr, rot = t.transform.translation, t.transform.rotation
        np.testing.assert_allclose([tr.x, tr.y, tr.z], expected[:3, 3], atol=1e-9)
        assert same_rotation([rot.x, rot.y, rot.z, rot.w], Rotation.from_matrix(expected[:3, :3]).as_quat())

    calib = load_calibration(bags[0])
    assert list(calib.cameras) == list(NUSCENES_CAMERAS)
    assert calib.lidar_frame == "LIDAR_TOP" and calib.label_grid == SURROUNDOCC_GRID
    np.testing.assert_allclose(calib.lidar2ego, sensor2ego("LIDAR_TOP"), atol=1e-12)
    for name, cam in calib.cameras.items():
        np.testing.assert_allclose(
            cam.cam2lidar, invert_transform(sensor2ego("LIDAR_TOP")) @ sensor2ego(name), atol=1e-9
        )
        assert cam.image_size == (90, 160)


def test_keyframe_labels_equal_the_label_files(bags, nusc, synthetic_dataset):
    scene = nusc.scene[1]
    labels = read_all(bags[1])["/occupancy/gt"]
    keyframes = [sd for sd in chain(nusc, scene, "LIDAR_TOP") if sd["is_key_frame"]]
    assert len(labels) == len(keyframes) == scene["nbr_samples"]
    for (bag_stamp, msg), sd in zip(labels, keyframes, strict=True):
        assert bag_stamp == sd["timestamp"] * 1000 and msg.header.frame_id == "LIDAR_TOP"
        points = cloud_to_array(msg)
        xyz = np.stack([points["x"], points["y"], points["z"]], axis=1)
        idx, inside = SURROUNDOCC_GRID.point_to_index(xyz)
        assert inside.all()
        dense = np.zeros(SURROUNDOCC_GRID.shape, dtype=np.uint8)
        dense[idx[:, 0], idx[:, 1], idx[:, 2]] = points["label"]
        source = load_surroundocc(
            Path(synthetic_dataset) / "surroundocc" / "samples" / f"{Path(sd['filename']).name}.npy"
        )
        np.testing.assert_array_equal(dense, source)
        np.testing.assert_allclose(xyz, SURROUNDOCC_GRID.index_to_center(idx), atol=1e-5)  # exact centres


def test_independent_mcap_reader_sees_the_same_messages(bags, nusc, synthetic_dataset):
    scene, bag = nusc.scene[0], bags[0]
    mcap_file = bag / f"{bag.name}.mcap"
    seen: dict[str, list] = {}
    with mcap_file.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()], validate_crcs=True)
        summary = reader.get_summary()
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        for _, channel, message, ros_msg in reader.iter_decoded_messages():
            seen.setdefault(channel.topic, []).append(Item(message.log_time, ros_msg))
            assert message.log_time == message.publish_time
    root = Path(synthetic_dataset)
    for item, sd in zip(seen["/CAM_BACK/image_rect/compressed"], chain(nusc, scene, "CAM_BACK"), strict=True):
        assert bytes(item.msg.data) == (root / sd["filename"]).read_bytes()
        assert item.log_time == stamp_ns(item.msg.header) == sd["timestamp"] * 1000
    for item, sd in zip(seen["/LIDAR_TOP"], chain(nusc, scene, "LIDAR_TOP"), strict=True):
        assert bytes(item.msg.data) == (root / sd["filename"]).read_bytes()
        assert [(f.name, f.offset, f.datatype) for f in item.msg.fields] == [
            ("x", 0, 7),
            ("y", 4, 7),
            ("z", 8, 7),
            ("intensity", 12, 7),
            ("ring", 16, 7),
        ]
        assert item.msg.point_step == 20 and item.msg.height == 1
    poses = {}
    for channel in ("LIDAR_TOP", *NUSCENES_CAMERAS):
        for sd in chain(nusc, scene, channel):
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
            poses[pose["timestamp"] * 1000] = pose
    assert [item.log_time for item in seen["/odom"]] == sorted(poses)
    for item in seen["/odom"]:
        pose, o = poses[item.log_time], item.msg.pose.pose
        np.testing.assert_allclose([o.position.x, o.position.y, o.position.z], pose["translation"], atol=1e-9)
    with BagReader(bag) as reader:
        assert {t: len(v) for t, v in seen.items()} == {t: info.count for t, info in reader.topics.items()}


def test_sqlite3_storage_holds_the_same_messages(synthetic_dataset, nusc, tmp_path, bags):
    name = nusc.scene[1]["name"]
    options = ConvertOptions(storage="sqlite3", labels="none", progress=False)
    [bag] = convert_nuscenes(synthetic_dataset, VERSION, tmp_path, [name], options)
    assert (bag / f"{name}.db3").is_file()
    sqlite_msgs, mcap_msgs = read_all(bag), read_all(bags[1])
    assert "/occupancy/gt" not in sqlite_msgs and load_calibration(bag).label_grid is None
    assert set(sqlite_msgs) == set(mcap_msgs) - {"/occupancy/gt"}
    for topic in sqlite_msgs:
        assert [s for s, _ in sqlite_msgs[topic]] == [s for s, _ in mcap_msgs[topic]]
    topic = "/CAM_FRONT/image_rect/compressed"
    front = zip(sqlite_msgs[topic], mcap_msgs[topic], strict=True)
    assert all(bytes(a.data) == bytes(b.data) for (_, a), (_, b) in front)
    with BagReader(bag) as reader:
        require_sensor_topics(reader, NUSCENES_CAMERAS)


def test_cli_writes_bags_and_refuses_to_overwrite(synthetic_dataset, nusc, tmp_path, capsys):
    name = nusc.scene[0]["name"]
    args = ["convert-nuscenes", "--dataroot", str(synthetic_dataset), "--out", str(tmp_path), "--scenes", name]
    assert main([*args, "--no-progress", "--labels", "none"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / name)
    before = (tmp_path / name / f"{name}.mcap").stat().st_mtime_ns
    assert main([*args, "--no-progress"]) == 2
    assert f"{tmp_path / name}: bag already exists" in capsys.readouterr().err
    assert (tmp_path / name / f"{name}.mcap").stat().st_mtime_ns == before


def test_unknown_scene_and_missing_tables_are_named(synthetic_dataset, tmp_path):
    with pytest.raises(DataError, match="no scene named 'scene-0061'.*synth-0003-0000"):
        convert_nuscenes(synthetic_dataset, VERSION, tmp_path / "out", ["scene-0061"], QUIET)
    with pytest.raises(DataError, match="v1.0-trainval"):
        convert_nuscenes(synthetic_dataset, "v1.0-trainval", tmp_path / "out", options=QUIET)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncated_sweep", "missing_image"])
def test_bad_source_file_leaves_no_partial_bag(synthetic_dataset, nusc, tmp_path, damage):
    root = tmp_path / "data"
    shutil.copytree(synthetic_dataset, root)
    scene = nusc.scene[0]
    if damage == "truncated_sweep":
        victim = root / chain(nusc, scene, "LIDAR_TOP")[5]["filename"]
        victim.write_bytes(victim.read_bytes()[:-7])
        message = "not a whole number of 5-float32 points"
    else:
        victim = root / chain(nusc, scene, "CAM_BACK_LEFT")[-1]["filename"]
        victim.unlink()
        message = "file not found"
    out = tmp_path / "bags"
    with pytest.raises(DataError, match=re.escape(str(victim)) + ".*" + message):
        convert_nuscenes(root, VERSION, out, [scene["name"]], QUIET)
    assert list(out.iterdir()) == []  # neither the bag nor its temporary folder
