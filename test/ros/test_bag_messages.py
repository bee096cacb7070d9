"""tacocc_core/bags/messages.py: messages built with rosbags decode with rclpy (the ROS C++ type support) as meant."""

from __future__ import annotations

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2

from tacocc_core.bags import messages as m
from tacocc_core.bags.cloud_layout import LIDAR_DTYPE
from tacocc_core.geometry import make_transform
from tacocc_ros.messages.pointcloud import cloud_to_array
from tacocc_ros.messages.stamps import stamp_to_ns

STAMP = 1_532_402_927_647_951_000
K = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])


def through_rclpy(msg, cls):
    return deserialize_message(m.serialize(msg), cls)


def test_camera_info_and_compressed_image():
    info = through_rclpy(m.camera_info(STAMP, "CAM_FRONT", K, 900, 1600), CameraInfo)
    assert stamp_to_ns(info.header.stamp) == STAMP and info.header.frame_id == "CAM_FRONT"
    assert (info.height, info.width, info.distortion_model) == (900, 1600, "plumb_bob")
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), K)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), np.c_[K, np.zeros(3)])
    np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), np.eye(3))
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 3
    image = through_rclpy(m.compressed_image(STAMP, "CAM_FRONT", jpeg), CompressedImage)
    assert image.format == "jpeg" and bytes(image.data) == jpeg


def test_point_cloud_is_a_byte_copy_of_the_points():
    points = np.zeros(50, dtype=LIDAR_DTYPE)
    rng = np.random.default_rng(1)
    for name in LIDAR_DTYPE.names:
        points[name] = rng.normal(size=50)
    cloud = through_rclpy(m.point_cloud(STAMP, "LIDAR_TOP", points), PointCloud2)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, 50, 20, 1000)
    assert cloud.is_dense and not cloud.is_bigendian
    assert bytes(cloud.data) == points.tobytes()
    np.testing.assert_array_equal(cloud_to_array(cloud), points)
    points["x"][3] = np.nan
    assert not through_rclpy(m.point_cloud(STAMP, "LIDAR_TOP", points), PointCloud2).is_dense


def test_odometry_carries_the_pose_with_an_xyzw_quaternion():
    rotation = Rotation.from_euler("z", 0.7)
    pose = make_transform(rotation.as_matrix(), [411.3, 1180.9, 0.2])
    odom = through_rclpy(m.odometry(STAMP, "odom", "base_link", pose, [5.0, 0.1, 0.0], [0.0, 0.0, 0.2]), Odometry)
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    p, q = odom.pose.pose.position, odom.pose.pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z], [411.3, 1180.9, 0.2])
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0.0, 0.0, np.sin(0.35), np.cos(0.35)], atol=1e-12)
    t = odom.twist.twist
    np.testing.assert_allclose([t.linear.x, t.linear.y, t.angular.z], [5.0, 0.1, 0.2])


def test_tf_message_has_one_transform_per_child():
    lidar2base = make_transform(Rotation.from_euler("z", -np.pi / 2).as_matrix(), [0.94, 0.0, 1.84])
    tf = m.TYPESTORE.deserialize_cdr(
        m.serialize(m.tf_message(STAMP, "base_link", {"LIDAR_TOP": lidar2base})), m.TF_MESSAGE
    )
    [t] = tf.transforms
    assert (t.header.frame_id, t.child_frame_id) == ("base_link", "LIDAR_TOP")
    r = t.transform.rotation
    np.testing.assert_allclose([r.x, r.y, r.z, r.w], [0, 0, -np.sin(np.pi / 4), np.cos(np.pi / 4)], atol=1e-12)
    assert t.transform.translation.z == pytest.approx(1.84)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="cannot be negative, got -5"):
        m.header(-5, "x")
    with pytest.raises(ValueError, match=r"CAM_FRONT: expected \(3, 3\) intrinsics"):
        m.camera_info(STAMP, "CAM_FRONT", np.eye(4), 900, 1600)
    with pytest.raises(ValueError, match="LIDAR_TOP: expected an \\(N,\\) structured array"):
        m.point_cloud(STAMP, "LIDAR_TOP", np.zeros((4, 3), np.float32))
