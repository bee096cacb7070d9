"""tacocc_ros.bags.bag_frames: frames and labels of a converted bag against the dataset reader on the same samples."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from ros_domains import in_process_domain
from rosbags.rosbag2 import Reader, Writer

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
from tacocc_core.bags.messages import TYPESTORE
from tacocc_core.bags.reading import BagError
from tacocc_core.config import load_preset
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_ros.bags.bag_frames import bag_frames, sequences

VERSION = "v1.0-mini"


@pytest.fixture(scope="module")
def tiny():
    return load_preset("tiny")


@pytest.fixture(scope="module")
def bag(synthetic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bag_frames")
    return convert_nuscenes(synthetic_dataset, VERSION, out, options=ConvertOptions(progress=False))[0]


@pytest.fixture(scope="module")
def frames(bag, tiny):
    return list(bag_frames(bag, tiny))


def test_keyframe_labels_and_poses_equal_the_dataset_reader(synthetic_dataset, frames, tiny):
    nusc = NuScenes(VERSION, str(synthetic_dataset), verbose=False)
    reader = NuScenesReader(nusc, tiny)
    labelled = {f.frame.stamp_ns: f for f in frames if f.labels is not None}
    samples = [s for s in nusc.sample if s["scene_token"] == nusc.scene[0]["token"]]
    assert len(labelled) == len(samples)
    for sample in samples:
        lidar_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        got = labelled[lidar_sd["timestamp"] * 1000]
        np.testing.assert_array_equal(got.labels, reader.labels(sample["token"]))
        expected = reader.frame(sample["token"])
        np.testing.assert_allclose(got.frame.lidar2global, expected.lidar2global, atol=1e-5)
        # The bag carries the static rig transform; the reader's also holds the ego motion between the
        # camera and LiDAR stamps (calibration.yaml docstring), a few decimetres at most at driving speed.
        np.testing.assert_allclose(got.frame.cam2lidar[:, :3, :3], expected.cam2lidar[:, :3, :3], atol=2e-2)
        np.testing.assert_allclose(got.frame.cam2lidar[:, :3, 3], expected.cam2lidar[:, :3, 3], atol=0.5)
        np.testing.assert_allclose(got.frame.cam2img, expected.cam2img, atol=1e-3)
        assert got.frame.camera_valid.all()
        assert got.frame.images.shape == expected.images.shape


def test_frames_are_in_stamp_order_with_previous_sweeps(frames, tiny):
    stamps = [f.frame.stamp_ns for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) > tiny.temporal.window
    later = frames[-1].frame.points
    assert later.shape[1] == 5 and (later[:, 4] > 0).any(), "previous sweeps were not merged"


def test_sequences_group_consecutive_frames(frames, tiny):
    window = tiny.temporal.window
    seqs = sequences(frames, window)
    assert len(seqs) == len(frames) // window
    assert all(len(s) == window for s in seqs)
    assert [f.frame.stamp_ns for s in seqs for f in s] == [f.frame.stamp_ns for f in frames[: len(seqs) * window]]
    with pytest.raises(ValueError, match="window"):
        sequences(frames, 0)


def test_missing_camera_topic_names_bag_and_topic(bag, tiny, tmp_path):
    broken = tmp_path / "broken"
    with Reader(bag) as src, Writer(broken, version=8) as dst:
        conns = {}
        for c in src.connections:
            if c.topic.startswith("/CAM_BACK/"):
                continue
            conns[c.id] = dst.add_connection(c.topic, c.msgtype, typestore=TYPESTORE)
        for c, stamp, data in src.messages():
            if c.id in conns:
                dst.write(conns[c.id], stamp, data)
    shutil.copy(bag / "calibration.yaml", broken / "calibration.yaml")
    with pytest.raises(
        BagError, match=r"no topic /CAM_BACK/image_rect/compressed .* in .*broken; set cameras.CAM_BACK"
    ):
        list(bag_frames(broken, tiny))


def test_a_bag_with_the_older_compressed_topic_names_gives_the_same_frames(bag, frames, tiny, tmp_path):
    old = tmp_path / "old_names"
    with Reader(bag) as src, Writer(old, version=8) as dst:
        conns = {
            c.id: dst.add_connection(c.topic.replace("/image_rect/compressed", "/image_rect_compressed"), c.msgtype,
                                     typestore=TYPESTORE)
            for c in src.connections
        }  # fmt: skip
        for c, stamp, data in src.messages():
            dst.write(conns[c.id], stamp, data)
    shutil.copy(bag / "calibration.yaml", old / "calibration.yaml")
    with Reader(old) as reader:
        assert "/CAM_BACK/image_rect_compressed" in {c.topic for c in reader.connections}
    again = list(bag_frames(old, tiny))
    assert [f.frame.stamp_ns for f in again] == [f.frame.stamp_ns for f in frames]
    for got, want in zip(again, frames, strict=True):
        np.testing.assert_array_equal(got.frame.images, want.frame.images)


def test_frames_equal_what_the_occupancy_node_builds(bag, frames):
    """The node's own sync, buffers and `_build_frame` on the same deserialised messages give the same frames."""
    import rclpy
    from rclpy.parameter import Parameter

    from tacocc_core.bags.reading import BagReader
    from tacocc_core.bags.topics import LIDAR_TOPIC, ODOM_TOPIC, camera_topics
    from tacocc_ros.bags.bag_frames import deserialize
    from tacocc_ros.messages.pointcloud import cloud_to_points
    from tacocc_ros.messages.stamps import stamp_to_ns
    from tacocc_ros.node.frame_assembly import LidarInput
    from tacocc_ros.node.node_params import camera_inputs
    from tacocc_ros.node.occupancy_node import OccupancyNode
    from tacocc_ros.node.sync import SyncedSet

    rclpy.init(domain_id=in_process_domain("bag_frames"))
    node = None
    try:
        params = [
            Parameter("model_config", value="tiny"),
            Parameter("calibration", value=str(bag / "calibration.yaml")),
            Parameter("extrinsics", value="calibration"),
            Parameter("device", value="cpu"),
        ]
        node = OccupancyNode(parameter_overrides=params)
        cams = {c.name: c for c in camera_inputs(node.values, node.cameras)}
        built = []
        with BagReader(bag) as reader:
            infos = {camera_topics(c)[1]: c for c in node.cameras}
            for raw in reader.messages([*infos, ODOM_TOPIC]):
                msg = deserialize(reader, raw)
                if raw.topic == ODOM_TOPIC:
                    node._on_odom(msg)
                else:
                    node._on_info(cams[infos[raw.topic]], msg)
            images = {camera_topics(c)[0]: c for c in node.cameras}
            for raw in reader.messages([LIDAR_TOPIC, *images]):
                msg = deserialize(reader, raw)
                stamp = stamp_to_ns(msg.header.stamp)
                if raw.topic == LIDAR_TOPIC:
                    points = cloud_to_points(msg)
                    events = node.sync.add_lidar(stamp, LidarInput(stamp, msg.header.frame_id, points, 0))
                    node.sweeps.add(stamp, points)
                else:
                    events = node.sync.add_image(images[raw.topic], stamp, msg)
                built += [node._build_frame(e) for e in events if isinstance(e, SyncedSet)]
        assert len(built) == len(frames)
        for ours, theirs in zip(frames, built, strict=True):
            a, b = ours.frame, theirs
            assert a.stamp_ns == b.stamp_ns and a.stream_id == b.stream_id
            np.testing.assert_array_equal(a.images, b.images)
            np.testing.assert_array_equal(a.points, b.points)
            np.testing.assert_array_equal(a.camera_valid, b.camera_valid)
            np.testing.assert_allclose(a.cam2img, b.cam2img, atol=1e-9)
            np.testing.assert_allclose(a.cam2lidar, b.cam2lidar, atol=1e-9)
            np.testing.assert_allclose(a.lidar2global, b.lidar2global, atol=1e-9)
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


@pytest.fixture(scope="module", params=["mcap", "db3"])
def robot_bag(bag, tmp_path_factory, request):
    from robot_bag import write_robot_bag

    return write_robot_bag(bag, tmp_path_factory.mktemp("robot") / f"robot_{request.param}", request.param)


def robot_topics(tmp_path, cameras, **changes):
    """SensorTopics from a ROS params file naming the robot bag's topics (the nodes' parameter names)."""
    import yaml
    from robot_bag import robot_params

    from tacocc_core.bags.topics import SensorTopics, read_params_file

    params = robot_params(cameras)
    for camera, entries in changes.items():
        params["cameras"][camera].update(entries)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return SensorTopics.from_params(read_params_file(path))


def test_a_robot_bag_gives_the_frames_of_the_converted_bag(robot_bag, frames, tiny, tmp_path):
    """Other topic names, raw rgb8 images, the rig from /tf_static + camera_info, ego motion from /tf only."""
    from robot_bag import MAP2ODOM

    notes: list[str] = []
    got = list(bag_frames(robot_bag, tiny, topics=robot_topics(tmp_path, tiny.cameras.names), log=notes.append))
    assert notes == [f"rig of {robot_bag} from its /tf_static and camera_info"]
    assert [f.frame.stamp_ns for f in got] == [f.frame.stamp_ns for f in frames]
    for ours, want in zip(got, frames, strict=True):
        a, b = ours.frame, want.frame
        assert ours.labels is None and a.camera_valid.all()
        np.testing.assert_array_equal(a.images, b.images)  # the same pixels, raw instead of JPEG
        np.testing.assert_allclose(a.lidar2global, MAP2ODOM @ b.lidar2global, atol=1e-6)
        np.testing.assert_allclose(a.points, b.points, atol=1e-4)  # previous sweeps through the /tf poses
        np.testing.assert_allclose(a.cam2lidar, b.cam2lidar, atol=1e-6)
        np.testing.assert_allclose(a.cam2img, b.cam2img, atol=1e-9)


def test_a_robot_bag_without_the_named_topic_says_which_parameter_to_set(robot_bag, tiny, tmp_path):
    topics = robot_topics(tmp_path, tiny.cameras.names, CAM_FRONT={"image_topic": "/cam_front/image_rect"})
    message = (
        r"no topic /cam_front/image_rect \(sensor_msgs/msg/Image or CompressedImage\) in .*robot_\w+; "
        r"set cameras.CAM_FRONT.image_topic"
    )
    with pytest.raises(BagError, match=message):
        list(bag_frames(robot_bag, tiny, topics=topics))


def test_a_bag_without_odometry_or_tf_has_no_ego_motion(bag, tiny, tmp_path):
    from robot_bag import write_robot_bag

    still = write_robot_bag(bag, tmp_path / "no_motion", "mcap", ego_motion=False)
    with pytest.raises(BagError, match=r"neither odom_topic /odom nor /tf with base_link in .*no_motion"):
        list(bag_frames(still, tiny, topics=robot_topics(tmp_path, tiny.cameras.names)))
