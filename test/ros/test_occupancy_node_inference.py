"""The occupancy node's network process against a `Predictor` the test runs on the same frames.

Real in-process OccupancyNodes (no DDS in between: the fixture frame goes straight into their callbacks, as
test_occupancy_node_bad_input.py does), `checkpoints/demo.pt`, one torch thread in either place.
"""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy")
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_domains import in_process_domain  # noqa: E402

from tacocc_core.config import load_preset  # noqa: E402
from tacocc_core.predictor import Predictor, PredictorOptions  # noqa: E402
from tacocc_ros.node.inference import InferenceProcess  # noqa: E402
from tacocc_ros.node.occupancy_node import OccupancyNode  # noqa: E402
from tacocc_ros.node.outputs import build_diagnostics  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages, driver_node_params  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
S = 1_000_000_000
STAMP = 1_700_000_000 * S


def start_node(repo_root: Path, frame, calibration: Path, domain: str):
    params = driver_node_params(calibration, str(repo_root / "checkpoints" / "demo.pt"), DriveOptions())
    params.update(inference_threads=1)
    context = Context()
    rclpy.init(context=context, domain_id=in_process_domain(domain))
    node = OccupancyNode(
        context=context, parameter_overrides=[Parameter(name, value=value) for name, value in params.items()]
    )
    node.messages = FrameMessages(frame, DriveOptions())
    node.grids = []
    publish = node._publish

    def keep(labels, lidar):  # what the node publishes, kept for the comparison
        node.grids.append((lidar.stamp_ns, labels.copy()))
        publish(labels, lidar)

    node._publish = keep
    node.frames_in = []
    predict = node.predictor.predict

    def recording(frame):  # the frames the network process is given, for the reference run
        node.frames_in.append(frame)
        return predict(frame)

    node.predictor.predict = recording
    return node, context


def stop_node(node, context) -> None:
    node.close()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def feed(node, stamp_ns: int) -> None:
    """The fixture frame into the callbacks, as the executor would deliver it."""
    m = node.messages
    node._on_odom(m.stamp(m.odom, stamp_ns))
    for name in m.images:
        camera = next(c for c in node.inputs if c.name == name)
        node._on_info(camera, m.stamp(m.infos[name], stamp_ns))
        node._on_image(camera, m.stamp(m.images[name], stamp_ns))
    node._on_cloud(m.stamp(m.cloud, stamp_ns))


def wait_grids(node, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(node.grids) < count:
        assert time.monotonic() < deadline, f"{len(node.grids)} grids, not {count}: {node.stats.snapshot(0)}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def fixture(repo_root, nuscenes_frame_dir, tmp_path_factory):
    frame = frame_from_fixture(nuscenes_frame_dir)
    return frame, frame.write_calibration(tmp_path_factory.mktemp("calib") / "calibration.yaml")


@pytest.fixture(scope="module")
def running(repo_root, fixture):
    """One node for the tests of this file (its start costs seconds); they run in file order, the last stops it."""
    node, context = start_node(repo_root, *fixture, "inference")
    node.stopped = False
    try:
        yield node, context
    finally:
        if not node.stopped:
            stop_node(node, context)


def test_the_network_process_publishes_what_a_predictor_makes_of_the_same_frames(repo_root, running):
    node, _ = running
    for i in range(3):  # one after the other: the temporal state carries over
        feed(node, STAMP + i * S // 2)
        wait_grids(node, i + 1)
    grids, frames = list(node.grids), list(node.frames_in)
    assert len(frames) == len(grids) == 3
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        options = PredictorOptions(device="cpu", precision="fp32", timings=False)
        reference = Predictor.from_checkpoint(repo_root / "checkpoints" / "demo.pt", load_preset("demo"), options)
        want = [reference.predict(frame).labels for frame in frames]
    finally:
        torch.set_num_threads(threads)
    for (_, got), expected in zip(grids, want, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert ((grids[-1][1] > 0) & (grids[-1][1] < 17)).sum() > 1000  # a real scene


def test_a_dead_inference_process_is_reported_restarted_and_serves_again(running):
    node, context = running
    start = STAMP + 10 * S  # after the previous test's frames
    try:
        assert isinstance(node.predictor, InferenceProcess)
        served = len(node.grids)
        feed(node, start)
        wait_grids(node, served + 1)
        first = node.predictor.pid
        os.kill(first, signal.SIGKILL)
        feed(node, start + S)  # this frame meets the dead process
        deadline = time.monotonic() + 120
        while node.stats.snapshot(0)["events"].get("inference process restarts", 0) < 1:
            assert time.monotonic() < deadline, node.stats.snapshot(0)
            time.sleep(0.05)
        snap = node.stats.snapshot(0)
        assert snap["failed"].get("inference process") == 1
        status = build_diagnostics(snap, 0).status[0]
        assert status.level != 0  # not OK: a failure since the previous snapshot
        assert node.predictor.pid not in (None, first) and node.predictor.alive
        feed(node, start + 2 * S)
        wait_grids(node, served + 2)
        assert node.worker.failed == 0
        second = node.predictor.pid
    finally:
        node.stopped = True
        stop_node(node, context)
    assert not Path(f"/proc/{second}").exists(), "the inference process outlived node.close()"
