"""tacocc_ros.tooling.drive_tf: the drive's rig as a /tf_static message, read back by the TF logic the node uses."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tacocc_core.bags.messages import TF_MESSAGE, TYPESTORE
from tacocc_core.rig.transform_tree import rig_from_transforms
from tacocc_ros.tooling.drive_source import frame_from_fixture
from tacocc_ros.tooling.drive_tf import TfStaticPublisher, rig_tf_static
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
