"""tacocc_ros.tooling.faults: each bad message is refused by the node's own checks, the good one it came from is not."""

import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from tacocc_ros.messages.images import ImageDecodeError, check_image, decode_for_network  # noqa: E402
from tacocc_ros.messages.pointcloud import PointCloudError, array_to_cloud, cloud_to_points  # noqa: E402
from tacocc_ros.messages.stamps import make_header  # noqa: E402
from tacocc_ros.node.frame_builder import pose_xyzw_to_transform  # noqa: E402
from tacocc_ros.tooling import faults  # noqa: E402
from tacocc_ros.tooling.drive_source import POINT_DTYPE, frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages  # noqa: E402


@pytest.fixture(scope="module")
def messages(nuscenes_frame_dir):
    return FrameMessages(frame_from_fixture(nuscenes_frame_dir), DriveOptions())


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_the_good_messages_decode(messages):
    assert len(cloud_to_points(messages.cloud)) == len(messages.frame.points) == 34688
    for name, msg in messages.images.items():
        check_image(msg, name)
        image, _ = decode_for_network(msg, (64, 176), source=name)
        assert image.shape == (64, 176, 3)
    raw = messages.images["CAM_BACK_RIGHT"]
    assert isinstance(raw, Image) and (raw.height, raw.width) == (450, 800)
    # the raw camera's K is scaled with its image; the others are the fixture's full-size K
    np.testing.assert_allclose(
        messages.infos["CAM_BACK_RIGHT"].k[0], messages.frame.intrinsics["CAM_BACK_RIGHT"][0, 0] / 2
    )
    np.testing.assert_allclose(
        np.reshape(messages.infos["CAM_FRONT"].k, (3, 3)), messages.frame.intrinsics["CAM_FRONT"]
    )


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("truncated_cloud", "truncated cloud"),
        ("short_point_step", "past point_step 8"),
        ("missing_x", "no field x"),
    ],
)
def test_malformed_clouds_are_refused_by_the_decoder(messages, rng, fault, match):
    bad = faults.bad_cloud(fault, messages.cloud, messages.frame.points, rng)
    with pytest.raises(PointCloudError, match=match):
        cloud_to_points(bad)
    assert len(cloud_to_points(messages.cloud)) == 34688  # the good message was not changed


def test_nonfinite_empty_and_huge_clouds(messages, rng):
    n = len(messages.frame.points)
    nonfinite = faults.bad_cloud("nonfinite_points", messages.cloud, messages.frame.points, rng)
    assert 0 < len(cloud_to_points(nonfinite)) < n  # decodes, with the broken points dropped
    empty = faults.bad_cloud("empty_cloud", messages.cloud, messages.frame.points, rng)
    assert empty.width * empty.height == 0 and len(cloud_to_points(empty)) == 0
    huge = faults.bad_cloud("huge_cloud", messages.cloud, messages.frame.points, rng)
    assert huge.width * huge.height == faults.HUGE_CLOUD_POINTS and len(huge.data) == 12 * faults.HUGE_CLOUD_POINTS


@pytest.mark.parametrize(
    ("fault", "match"), [("corrupt_jpeg", "unreadable image header"), ("unknown_format", "neither")]
)
def test_bad_compressed_images_are_refused_by_the_header_check(messages, rng, fault, match):
    good = messages.images["CAM_FRONT"]
    bad = faults.bad_compressed(fault, good, rng)
    assert isinstance(bad, CompressedImage)
    with pytest.raises(ImageDecodeError, match=match):
        check_image(bad, "/CAM_FRONT/image_rect/compressed")


def test_a_raw_image_with_a_short_step_is_refused(messages):
    bad = faults.wrong_step_image(messages.images["CAM_BACK_RIGHT"])
    with pytest.raises(ImageDecodeError, match="step 2397 < width 800"):
        check_image(bad, "/CAM_BACK_RIGHT/image_raw")


def test_zero_k_and_nan_quaternion(messages):
    info = faults.zero_k_info(messages.infos["CAM_FRONT_RIGHT"])
    assert isinstance(info, CameraInfo) and not np.any(info.k)
    assert np.any(messages.infos["CAM_FRONT_RIGHT"].k)  # the good one is unchanged
    odom = faults.nan_quaternion_odom(messages.odom)
    q = odom.pose.pose.orientation
    with pytest.raises(ValueError, match="has no direction"):
        pose_xyzw_to_transform((0, 0, 0), (q.x, q.y, q.z, q.w))
    good = messages.odom.pose.pose.orientation
    pose_xyzw_to_transform((0, 0, 0), (good.x, good.y, good.z, good.w))


def test_every_fault_names_its_diagnostics_keys_and_unknown_ones_are_refused():
    cams = faults.FaultCameras()
    for fault in faults.FAULTS:
        assert faults.diagnostics_keys(fault, cams)
    assert faults.check_faults(["all"]) == faults.FAULTS
    with pytest.raises(ValueError, match="unknown fault bogus"):
        faults.check_faults(["truncated_cloud", "bogus"])


def test_array_to_cloud_round_trip_of_the_driver_dtype():
    points = np.zeros(3, dtype=POINT_DTYPE)
    points["x"] = [1, 2, 3]
    cloud = array_to_cloud(points, make_header(5, "LIDAR_TOP"))
    np.testing.assert_array_equal(cloud_to_points(cloud)[:, 0], [1, 2, 3])
