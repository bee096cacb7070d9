"""`tacocc drive --generated`: generated malformed messages mixed into real-rate traffic.

Each generated mutation is refused (or absorbed) by the node's own checks. The short drive against a real
node process with a fifth of every stream malformed is in test_load_driver.py (on the node of its fault
drive: one node start for both). The minutes-long run is on the results page (its command there).
"""

import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import Image  # noqa: E402

from tacocc_ros.messages.images import ImageDecodeError, check_image, decode_for_network  # noqa: E402
from tacocc_ros.messages.pointcloud import PointCloudError, cloud_to_points  # noqa: E402
from tacocc_ros.node.frame_builder import pose_xyzw_to_transform  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.generated_faults import MUTATIONS, GeneratedFaults  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages  # noqa: E402


@pytest.fixture(scope="module")
def messages(nuscenes_frame_dir):
    return FrameMessages(frame_from_fixture(nuscenes_frame_dir), DriveOptions())


def test_every_generated_mutation_is_refused_or_absorbed_by_the_node_checks(messages):
    gen = GeneratedFaults(np.random.default_rng(0))
    good_cloud = bytes(messages.cloud.data)
    refused = 0
    for _ in range(200):
        cloud = gen.cloud(messages.cloud)
        try:
            points = cloud_to_points(cloud)
        except PointCloudError:
            continue
        assert points.dtype == np.float32  # nan_points / random_bytes decode; the node drops non-finite rows
    assert bytes(messages.cloud.data) == good_cloud  # the good message is never modified
    for name, good in messages.images.items():
        for _ in range(40):
            msg = gen.image(good)
            try:  # a cut or bit-flipped JPEG may still decode (libjpeg fills the rest): a degraded image, no crash
                check_image(msg, name)
                image, _ = decode_for_network(msg, (64, 176), source=name)
            except ImageDecodeError:
                refused += 1
                continue
            assert image.shape == (64, 176, 3)
        for _ in range(10):
            k = np.asarray(gen.info(messages.infos[name]).k).reshape(3, 3)
            assert not (k[0, 0] > 0 and k[1, 1] > 0 and np.isfinite(k).all())  # the node's CameraInfo check refuses
    for _ in range(60):
        odom = gen.odom(messages.odom)
        p, q = odom.pose.pose.position, odom.pose.pose.orientation
        try:
            pose_xyzw_to_transform((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except ValueError:
            continue
        assert odom.header.stamp != messages.odom.header.stamp or odom is not messages.odom  # stamp_back
    assert refused >= 6 * 40 // 2
    seen = {key.split(" ", 1)[1] for key in gen.counts}
    raw = [m for m in messages.images.values() if isinstance(m, Image)]
    expected = {m for stream, ms in MUTATIONS.items() if stream != "raw" or raw for m in ms}
    assert seen == expected
