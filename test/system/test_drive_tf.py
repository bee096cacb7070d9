"""tacocc_ros.tooling.drive_tf: the drive's rig as a /tf_static message, read back by the TF logic the node uses."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from tacocc_core.bags.convert import LATCHED_QOS, SENSOR_QOS
from tacocc_core.bags.messages import CAMERA_INFO, POINT_CLOUD2, TF_MESSAGE, TYPESTORE
from tacocc_core.bags.topics import LIDAR_TOPIC, TF_STATIC_TOPIC, camera_topics
from tacocc_core.rig.sources import rig_from_bag
from tacocc_core.rig.transform_tree import rig_from_transforms
from tacocc_ros.tooling.drive_source import frame_from_fixture
from tacocc_ros.tooling.drive_tf import TfStaticPublisher, rig_tf_static
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages
from tacocc_ros.tooling.node_process import RosHandle


@pytest.fixture(scope="module")
def frame(nuscenes_frame_dir):
    return frame_from_fixture(nuscenes_frame_dir)


def test_tf_static_gives_back_the_rig_of_the_fixture(frame):
    data = rig_tf_static(frame, 1_700_000_000_123_000_000)
    msg = TYPESTORE.deserialize_cdr(data, TF_MESSAGE)
    assert {t.header.frame_id for t in msg.transforms} == {"base_link"}
    assert len(msg.transforms) == 1 + len(frame.cameras) == 7
    assert all(t.header.stamp.sec == 1_700_000_000 and t.header.stamp.nanosec == 123_000_000 for t in msg.transforms)
    cameras = {name: name for name in frame.cameras}
    rig = rig_from_transforms(msg.transforms, frame.lidar_frame, "base_link", cameras)
    assert not rig.missing, rig.missing
    np.testing.assert_allclose(rig.lidar2ego, frame.calibration.lidar2ego, atol=1e-9)
    for name in frame.cameras:
        np.testing.assert_allclose(rig.cam2lidar[name], frame.calibration.cameras[name].cam2lidar, atol=1e-9)


def test_a_recording_of_the_drive_gives_the_training_node_its_rig(frame, tmp_path):
    """The drive's messages as a recorder stores them (CDR bytes): /tf_static, each CameraInfo, a sweep."""
    messages = FrameMessages(frame, DriveOptions(raw_camera=None))
    stamp = 1_700_000_000_000_000_000
    with Writer(tmp_path / "drive", version=8, storage_plugin=StoragePlugin.MCAP) as writer:

        def put(topic: str, msgtype: str, qos, data: bytes) -> None:
            conn = writer.add_connection(topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[qos])
            writer.write(conn, stamp, data)

        put(TF_STATIC_TOPIC, TF_MESSAGE, LATCHED_QOS, rig_tf_static(frame, stamp))
        for name, info in messages.infos.items():
            put(camera_topics(name)[1], CAMERA_INFO, LATCHED_QOS, serialize_message(messages.stamp(info, stamp)))
        put(LIDAR_TOPIC, POINT_CLOUD2, SENSOR_QOS, serialize_message(messages.stamp(messages.cloud, stamp)))
    rig = rig_from_bag(tmp_path / "drive", frame.cameras)
    assert rig.lidar_frame == frame.lidar_frame
    np.testing.assert_allclose(rig.lidar2ego, frame.calibration.lidar2ego, atol=1e-9)
    for name in frame.cameras:
        np.testing.assert_allclose(rig.cameras[name].cam2lidar, frame.calibration.cameras[name].cam2lidar, atol=1e-9)
        np.testing.assert_allclose(rig.cameras[name].cam2img, frame.intrinsics[name], atol=1e-9)


def test_publisher_is_there_exactly_where_tf2_msgs_is(frame):
    ros = RosHandle("drive_tf_test")
    try:
        publisher = TfStaticPublisher(ros.node)
        has_tf2 = importlib.util.find_spec("tf2_msgs") is not None
        assert publisher.available == has_tf2
        assert publisher.publish(frame, 1) == has_tf2
        if not has_tf2:
            assert "tf2_msgs" in publisher.reason
    finally:
        ros.close()
