"""The occupancy node's `backend` parameter: onnxruntime publishes the grids eager PyTorch publishes.

Real in-process OccupancyNodes fed the fixture frame through their callbacks (as
test_occupancy_node_inference.py does), `checkpoints/demo.pt`, the network in the node's inference process
(so the backend option reaches the child: the onnxruntime node's child exports and runs the ONNX parts).
"""

import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("onnxruntime", reason="the onnxruntime backend needs onnxruntime")
pytest.importorskip("onnx", reason="the node exports the ONNX parts at startup")
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_domains import in_process_domain  # noqa: E402

from tacocc_core.inference_process import InferenceProcess  # noqa: E402
from tacocc_ros.node.occupancy_node import OccupancyNode  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages, driver_node_params  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
S = 1_000_000_000
STAMP = 1_700_000_000 * S


def grids_of(repo_root, frame, calibration, backend: str, domain: str) -> list[np.ndarray]:
    params = driver_node_params(calibration, str(repo_root / "checkpoints" / "demo.pt"), DriveOptions())
    params.update(inference_threads=1, backend=backend)
    context = Context()
    rclpy.init(context=context, domain_id=in_process_domain(domain))
    node = OccupancyNode(
        context=context, parameter_overrides=[Parameter(name, value=value) for name, value in params.items()]
    )
    assert isinstance(node.predictor, InferenceProcess) and node.predictor.alive
    # The backend option reached the network's process: onnxruntime is loaded there for that backend only.
    maps = Path(f"/proc/{node.predictor.pid}/maps").read_text()
    assert ("onnxruntime" in maps) == (backend == "onnxruntime"), backend
    grids: list[np.ndarray] = []
    publish = node._publish

    def keep(labels, lidar):
        grids.append(labels.copy())
        publish(labels, lidar)

    node._publish = keep
    messages = FrameMessages(frame, DriveOptions())
    try:
        for i in range(2):  # the temporal state carries over to the second frame
            stamp = STAMP + i * S // 2
            node._on_odom(messages.stamp(messages.odom, stamp))
            for name in messages.images:
                camera = next(c for c in node.inputs if c.name == name)
                node._on_info(camera, messages.stamp(messages.infos[name], stamp))
                node._on_image(camera, messages.stamp(messages.images[name], stamp))
            node._on_cloud(messages.stamp(messages.cloud, stamp))
            deadline = time.monotonic() + 120
            while len(grids) < i + 1:
                assert time.monotonic() < deadline, f"no grid: {node.stats.snapshot(0)}"
                time.sleep(0.05)
        return grids
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_the_onnxruntime_backend_publishes_the_grids_of_the_torch_backend(repo_root, nuscenes_frame_dir, tmp_path):
    frame = frame_from_fixture(nuscenes_frame_dir)
    calibration = frame.write_calibration(tmp_path / "calibration.yaml")
    torch_grids = grids_of(repo_root, frame, calibration, "torch", "backend_torch")
    onnx_grids = grids_of(repo_root, frame, calibration, "onnxruntime", "backend_onnxruntime")
    for want, got in zip(torch_grids, onnx_grids, strict=True):
        assert (want == got).mean() >= 0.999
    assert ((onnx_grids[-1] > 0) & (onnx_grids[-1] < 17)).sum() > 1000  # a real scene
