"""tacocc_ros.messages (clouds, images) over real DDS: our messages survive a publish/subscribe trip."""

import io
import time

import numpy as np
import pytest
from PIL import Image as PILImage

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, PointCloud2  # noqa: E402

from tacocc_ros.messages.images import compressed_to_rgb, decode_for_network  # noqa: E402
from tacocc_ros.messages.pointcloud import array_to_cloud, cloud_to_array, cloud_to_points  # noqa: E402
from tacocc_ros.messages.stamps import make_header, stamp_to_ns  # noqa: E402

pytestmark = pytest.mark.ros

STAMP = 1_532_402_927_647_951_000


def test_pointcloud_and_compressed_image_survive_a_dds_round_trip():
    rng = np.random.default_rng(0)
    dtype = np.dtype({"names": ["intensity", "x", "y", "z", "ring"], "formats": ["<f4", "<f4", "<f4", "<f4", "<u2"],
                      "offsets": [0, 4, 8, 12, 16], "itemsize": 24})  # fmt: skip
    points = np.zeros((4, 250), dtype=dtype)  # organized, padded
    for name in ("intensity", "x", "y", "z"):
        points[name] = rng.normal(0, 20, size=points.shape)
    points["ring"] = rng.integers(0, 32, size=points.shape)
    cloud = array_to_cloud(points, make_header(STAMP, "LIDAR_TOP"))
    rgb = rng.integers(0, 256, size=(90, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    image = CompressedImage(header=make_header(STAMP, "CAM_FRONT"), format="png", data=buffer.getvalue())

    rclpy.init()
    received = {}
    try:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        talker = rclpy.create_node("roundtrip_talker")
        listener = rclpy.create_node("roundtrip_listener")
        pub_cloud = talker.create_publisher(PointCloud2, "/LIDAR_TOP", qos)
        pub_image = talker.create_publisher(CompressedImage, "/CAM_FRONT/image_rect/compressed", qos)
        listener.create_subscription(PointCloud2, "/LIDAR_TOP", lambda m: received.setdefault("cloud", m), qos)
        listener.create_subscription(
            CompressedImage, "/CAM_FRONT/image_rect/compressed", lambda m: received.setdefault("image", m), qos
        )
        executor = SingleThreadedExecutor()
        executor.add_node(talker)
        executor.add_node(listener)
        deadline = time.monotonic() + 20.0
        while len(received) < 2 and time.monotonic() < deadline:
            if pub_cloud.get_subscription_count() and pub_image.get_subscription_count():
                pub_cloud.publish(cloud)
                pub_image.publish(image)
            executor.spin_once(timeout_sec=0.1)
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    finally:
        rclpy.try_shutdown()

    assert set(received) == {"cloud", "image"}, f"received only {sorted(received)} within 20 s"
    got_cloud, got_image = received["cloud"], received["image"]
    assert stamp_to_ns(got_cloud.header.stamp) == STAMP and got_cloud.header.frame_id == "LIDAR_TOP"
    back = cloud_to_array(got_cloud, organized=True)
    assert back.shape == (4, 250) and back.dtype == dtype
    np.testing.assert_array_equal(back, points)
    xyzi = cloud_to_points(got_cloud)
    np.testing.assert_array_equal(xyzi[:, 0], points["x"].reshape(-1))
    np.testing.assert_array_equal(xyzi[:, 3], points["intensity"].reshape(-1))

    assert stamp_to_ns(got_image.header.stamp) == STAMP and got_image.format == "png"
    np.testing.assert_array_equal(compressed_to_rgb(got_image), rgb)
    small, transform = decode_for_network(got_image, (45, 80))
    np.testing.assert_array_equal(small, transform.apply_to_image(rgb))
