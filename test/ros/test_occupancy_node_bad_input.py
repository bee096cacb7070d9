"""Every fault class of `tacocc drive`, handed straight to a real in-process OccupancyNode's callbacks.

No DDS in between, so each bad message surely reaches the node (over DDS a 24 MB cloud may not, see
tacocc_ros/tooling/faults.py): each is counted under its fixed /diagnostics key, logged, survived, and the
next good frame is inferred and counted as published.
"""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_domains import in_process_domain  # noqa: E402

from tacocc_ros.messages.pointcloud import array_to_cloud, cloud_to_array  # noqa: E402
from tacocc_ros.node.occupancy_node import OccupancyNode  # noqa: E402
from tacocc_ros.tooling import faults  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages, driver_node_params  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
S = 1_000_000_000


@pytest.fixture(scope="module")
def node(repo_root, nuscenes_frame_dir, tmp_path_factory):
    frame = frame_from_fixture(nuscenes_frame_dir)
    calibration = frame.write_calibration(tmp_path_factory.mktemp("calib") / "calibration.yaml")
    params = driver_node_params(calibration, str(repo_root / "checkpoints" / "demo.pt"), DriveOptions())
    params["inference_threads"] = 1  # the node lives in the test process: leave its torch thread count alone
    context = Context()
    # A domain of its own: this node needs no DDS peer, and a node named occupancy_node must not show up in the
    # graph of the other node tests of this session.
    rclpy.init(context=context, domain_id=in_process_domain("bad_input"))
    node = OccupancyNode(
        context=context, parameter_overrides=[Parameter(name, value=value) for name, value in params.items()]
    )
    node.messages = FrameMessages(frame, DriveOptions())
    yield node
    node.close()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def cam(node, name):
    return next(c for c in node.inputs if c.name == name)


def publish_frame(node, stamp_ns: int, skip=(), cloud=None) -> None:
    """One good frame into the callbacks, as the executor would deliver it; `cloud` replaces the sweep."""
    m = node.messages
    node._on_odom(m.stamp(m.odom, stamp_ns))
    for name in m.images:
        node._on_info(cam(node, name), m.stamp(m.infos[name], stamp_ns))
        if name not in skip:
            node._on_image(cam(node, name), m.stamp(m.images[name], stamp_ns))
    node._on_cloud(m.stamp(cloud if cloud is not None else m.cloud, stamp_ns))


def wait_published(node, count: int, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while node.stats.snapshot(0)["published"] < count:
        assert time.monotonic() < deadline, f"no grid {count} within {timeout_s} s: {node.stats.snapshot(0)}"
        time.sleep(0.05)
    return node.stats.snapshot(0)


def counts(node) -> dict:
    snap = node.stats.snapshot(0)
    return {**{f"failed {k}": v for k, v in snap["failed"].items()},
            **{f"dropped {k}": v for k, v in snap["dropped"].items()}, **snap["events"]}  # fmt: skip


def test_each_fault_is_counted_under_its_key_and_the_next_good_frame_is_published(node):
    rng = np.random.default_rng(0)
    m, fc = node.messages, faults.FaultCameras()
    stamp = 1_700_000_000 * S
    publish_frame(node, stamp)
    published = wait_published(node, 1)["published"]
    for fault in faults.FAULTS:
        before = counts(node)
        stamp += S
        if fault in (
            "truncated_cloud",
            "short_point_step",
            "missing_x",
            "nonfinite_points",
            "empty_cloud",
            "huge_cloud",
        ):
            publish_frame(node, stamp, cloud=faults.bad_cloud(fault, m.stamp(m.cloud, stamp), m.frame.points, rng))
        elif fault in ("corrupt_jpeg", "unknown_format"):
            camera = getattr(fc, fault)
            node._on_image(cam(node, camera), faults.bad_compressed(fault, m.stamp(m.images[camera], stamp), rng))
        elif fault == "wrong_step":
            node._on_image(cam(node, fc.wrong_step), faults.wrong_step_image(m.stamp(m.images[fc.wrong_step], stamp)))
        elif fault == "zero_k":
            node._on_info(cam(node, fc.zero_k), faults.zero_k_info(m.stamp(m.infos[fc.zero_k], stamp)))
        elif fault == "nan_quaternion":
            node._on_odom(faults.nan_quaternion_odom(m.stamp(m.odom, stamp)))
        elif fault == "time_jump":
            stamp -= 30 * S
        elif fault == "silent_camera":  # a frame without CAM_BACK, then one later sweep to time it out
            publish_frame(node, stamp, skip=(fc.silent_camera,))
            stamp += S // 2
            node._on_cloud(m.stamp(m.cloud, stamp))
        if fault == "time_jump":
            publish_frame(node, stamp)
        after = counts(node)
        keys = faults.diagnostics_keys(fault, fc)
        assert any(after.get(k, 0) > before.get(k, 0) for k in keys), (fault, keys, after)
        stamp += S
        publish_frame(node, stamp)
        published = wait_published(node, published + 1)["published"]
    snap = node.stats.snapshot(0)
    assert len(snap["failed"]) + len(snap["dropped"]) + len(snap["events"]) < 40  # fixed reasons only
    assert node.worker.failed == 0


def scaled_cloud(node, factor: float):
    """The fixture's cloud with its intensities multiplied by `factor` (a driver on another scale)."""
    m = node.messages
    points = cloud_to_array(m.cloud).copy()
    points["intensity"] *= factor
    return array_to_cloud(points, m.cloud.header, is_dense=True)


def test_intensities_on_another_scale_warn_once_and_the_scale_parameter_brings_them_back(node):
    fixture = node.messages.frame.points["intensity"].astype(np.float32)
    assert 10 < fixture.max() <= 255  # nuScenes' scale, what the checkpoint was trained on
    seen = {}
    predict = node.predictor.predict

    def recording(frame):  # the intensities the network is given (this sweep's points come first)
        seen[frame.stamp_ns] = frame.points[: len(fixture), 3].copy()
        return predict(frame)

    def network_input(stamp_ns: int) -> np.ndarray:
        deadline = time.monotonic() + 60
        while stamp_ns not in seen:
            assert time.monotonic() < deadline, f"sweep {stamp_ns} never reached the network: {node.stats.snapshot(0)}"
            time.sleep(0.05)
        return seen[stamp_ns]

    node.predictor.predict = recording
    try:
        stamp = 1_800_000_000 * S
        loud = scaled_cloud(node, 40.0)  # a driver sending 0-10200
        for i in range(2):
            publish_frame(node, stamp + i * S, cloud=loud)
            network_input(stamp + i * S)
        assert counts(node).get("intensity off the training scale") == 1  # once, not per sweep
        assert "intensity scale" in node._warned
        np.testing.assert_allclose(seen[stamp + S], fixture * 40.0, rtol=1e-6)

        result = node.set_parameters([Parameter("lidar_intensity_scale", value=1 / 40)])[0]
        assert result.successful, result.reason
        publish_frame(node, stamp + 5 * S, cloud=loud)
        np.testing.assert_allclose(network_input(stamp + 5 * S), fixture, rtol=1e-5)
        refused = node.set_parameters([Parameter("lidar_intensity_scale", value=0.0)])[0]
        assert not refused.successful and "lidar_intensity_scale: must be > 0" in refused.reason
    finally:
        node.predictor.predict = predict
        node.set_parameters([Parameter("lidar_intensity_scale", value=1.0)])
