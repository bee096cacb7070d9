"""tacocc_ros.node.foxglove_bridge over real DDS and a real WebSocket: the node's grid, live in a Foxglove client.

The node runs the demo checkpoint on the real fixture frame (`tacocc drive`'s load driver publishes it at
sensor rates) with `foxglove_port` set; a ws-protocol client (websockets, protobuf classes built from the
schemas the server advertises) subscribes like the Foxglove app. Each VoxelGrid it decodes must equal the
grid the node published on /occupancy/cloud with the same stamp.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("websockets")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402

from tacocc_core.config import load_preset  # noqa: E402
from tacocc_core.labels import NUM_CLASSES, PALETTE  # noqa: E402
from tacocc_core.viz.foxglove_messages import (  # noqa: E402
    LIDAR_TOPIC,
    OCCUPANCY_TOPIC,
    TF_TOPIC,
    camera_topic,
)
from tacocc_ros.messages.stamps import stamp_to_ns  # noqa: E402
from tacocc_ros.node.foxglove_bridge import FoxgloveBridge, FoxgloveBridgeError  # noqa: E402
from tacocc_ros.tooling.drive_source import frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.foxglove_client import FoxgloveClient  # noqa: E402
from tacocc_ros.tooling.load_driver import DEFAULT_OUTPUT_TOPIC, DriveOptions, LoadDriver, driver_node_params  # noqa: E402
from tacocc_ros.tooling.node_process import OccupancyNodeProcess, RosHandle  # noqa: E402
from tacocc_ros.tooling.replay_recorder import cloud_to_grid  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
RAW_CAMERA = "CAM_BACK_RIGHT"  # the driver publishes it as a raw rgb8 Image: the bridge sends it as a JPEG
GRID = load_preset("demo").grid.spec()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stamp_of(message) -> int:
    return message.timestamp.seconds * 1_000_000_000 + message.timestamp.nanos


def voxel_labels(grid_msg) -> tuple[np.ndarray, np.ndarray]:
    """A decoded foxglove.VoxelGrid -> ((X, Y, Z) labels, (X, Y, Z, 4) rgba), read through its fields and strides."""
    fields = {f.name: f.offset for f in grid_msg.fields}
    data = np.frombuffer(grid_msg.data, dtype=np.uint8)
    depth = len(data) // grid_msg.slice_stride
    nx, ny = grid_msg.column_count, grid_msg.row_count
    x, y, z = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(depth), indexing="ij")
    base = z * grid_msg.slice_stride + y * grid_msg.row_stride + x * grid_msg.cell_stride
    rgba = np.stack([data[base + fields[c]] for c in ("red", "green", "blue", "alpha")], axis=-1)
    return data[base + fields["label"]], rgba


class CloudListener:
    """The node's /occupancy/cloud as (X, Y, Z) grids by LiDAR stamp."""

    def __init__(self) -> None:
        self.ros = RosHandle("foxglove_test_listener")
        self.grids: dict[int, np.ndarray] = {}
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.ros.node.create_subscription(PointCloud2, DEFAULT_OUTPUT_TOPIC, self._on_cloud, qos)

    def _on_cloud(self, msg: PointCloud2) -> None:
        self.grids[stamp_to_ns(msg.header.stamp)] = cloud_to_grid(msg, GRID)


def drive_until(frame, done, timeout_s: float = 180.0) -> None:
    """Publish the frame at sensor rates until `done()` (a node on a busy machine makes few grids a second)."""
    options = DriveOptions(duration_s=timeout_s, warmup_s=0.0, settle_s=0.0, raw_camera=RAW_CAMERA)
    driver, failed = LoadDriver(frame, options), []

    def run() -> None:
        try:
            driver.run()
        except Exception as err:  # reported by the waiting test
            failed.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert thread.is_alive(), f"the load driver stopped before it was done: {failed}"
            assert time.monotonic() < deadline, f"not done after {timeout_s:.0f} s of driving"
            time.sleep(0.05)
    finally:
        driver.stop()
        thread.join(30)


@pytest.fixture(scope="module")
def served(nuscenes_frame_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("foxglove")
    frame = frame_from_fixture(nuscenes_frame_dir)
    port = free_port()
    options = DriveOptions(raw_camera=RAW_CAMERA)
    params = driver_node_params(
        frame.write_calibration(tmp / "calibration.yaml"),
        str(REPO / "checkpoints" / "demo.pt"),
        options,
        {"foxglove_port": port},
    )
    with OccupancyNodeProcess(params, tmp / "node.log") as node:
        yield node, frame, port


def test_a_client_decodes_the_grid_the_node_published(served):
    node, frame, port = served
    listener = CloudListener()
    try:
        with FoxgloveClient(f"ws://127.0.0.1:{port}", keep=True) as client:

            def published_and_served() -> int:
                served = {log_time for log_time, _ in client.messages[OCCUPANCY_TOPIC]}
                return len(served & set(listener.grids))

            drive_until(frame, lambda: published_and_served() >= 3)
            time.sleep(1.0)
            node.check_alive("after the drive")
            grids = [client.decode(OCCUPANCY_TOPIC, p) for _, p in client.messages[OCCUPANCY_TOPIC]]
            assert client.channel(OCCUPANCY_TOPIC)["schemaName"] == "foxglove.VoxelGrid"
            matched = 0
            for grid_msg in grids:
                assert (grid_msg.column_count, grid_msg.row_count) == GRID.shape[:2]
                assert grid_msg.frame_id == frame.lidar_frame
                assert (grid_msg.cell_size.x, grid_msg.cell_size.y, grid_msg.cell_size.z) == GRID.voxel_size
                assert (grid_msg.pose.position.x, grid_msg.pose.position.y, grid_msg.pose.position.z) == GRID.lower
                labels, rgba = voxel_labels(grid_msg)
                assert labels.shape == GRID.shape
                occupied = (labels > 0) & (labels < NUM_CLASSES)
                assert np.array_equal(rgba[..., 3] == 255, occupied) and not rgba[~occupied, 3].any()
                assert np.array_equal(rgba[occupied][:, :3], PALETTE[labels[occupied]])
                published = listener.grids.get(stamp_of(grid_msg))
                if published is not None:
                    assert np.array_equal(labels, published), stamp_of(grid_msg)
                    matched += 1
            assert matched >= 3 and any(np.count_nonzero(g) for g in listener.grids.values())

            _, cloud = client.wait_for(LIDAR_TOPIC, timeout_s=5)
            assert client.channel(LIDAR_TOPIC)["schemaName"] == "foxglove.PointCloud"
            xyz = np.frombuffer(cloud.data, dtype="<f4").reshape(-1, cloud.point_stride // 4)[:, :3]
            assert len(xyz) == len(frame.points)
            assert np.allclose(xyz, np.stack([frame.points[c] for c in "xyz"], axis=1))
            for camera in frame.cameras:
                _, image = client.wait_for(camera_topic(camera), timeout_s=5)
                assert image.frame_id == camera and image.format == "jpeg" and image.data[:2] == b"\xff\xd8"
                if camera != RAW_CAMERA:
                    assert image.data == frame.jpegs[camera]  # sent as they arrived
            # A frame's TF names the cameras that frame used: a frame run without a late camera (min_cameras 5,
            # a loaded machine) leaves that one out. Every camera is in some frame's TF, each where the rig has it.
            client.wait_for(TF_TOPIC, timeout_s=5)
            seen = set()
            for _, payload in list(client.messages[TF_TOPIC]):
                for t in client.decode(TF_TOPIC, payload).transforms:
                    if t.child_frame_id in frame.cameras:
                        assert t.parent_frame_id == frame.lidar_frame, t.parent_frame_id
                        cam2lidar = frame.calibration.cameras[t.child_frame_id].cam2lidar
                        got = [getattr(t.translation, a) for a in "xyz"]
                        assert np.allclose(got, cam2lidar[:3, 3], atol=1e-6), (t.child_frame_id, got)
                        seen.add(t.child_frame_id)
            assert seen == set(frame.cameras), seen
    finally:
        listener.ros.close()


def test_a_client_that_vanishes_mid_stream_leaves_the_node_serving_the_others(served):
    node, frame, port = served
    url = f"ws://127.0.0.1:{port}"
    gone = FoxgloveClient(url, topics={OCCUPANCY_TOPIC}, keep=True).start()
    drive_until(frame, lambda: len(gone.messages[OCCUPANCY_TOPIC]) >= 1)
    gone.drop()  # no close handshake: the socket just goes away
    with FoxgloveClient(url, topics={OCCUPANCY_TOPIC}, keep=True) as other:
        drive_until(frame, lambda: len(other.messages[OCCUPANCY_TOPIC]) >= 2)
    node.check_alive("after a client vanished")
    assert "Traceback" not in node.log_tail()


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(FoxgloveBridgeError, match=rf"127\.0\.0\.1:{port} did not start: .*in use"):
            FoxgloveBridge(GRID, ("CAM_FRONT",), port)


@pytest.mark.slow  # a second node start; test_a_port_in_use_is_a_clear_error covers the error itself
def test_the_node_runs_on_without_the_bridge_when_its_port_is_taken(nuscenes_frame_dir, tmp_path):
    frame = frame_from_fixture(nuscenes_frame_dir)
    options = DriveOptions(raw_camera=RAW_CAMERA)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        params = driver_node_params(
            frame.write_calibration(tmp_path / "calibration.yaml"),
            str(REPO / "checkpoints" / "demo.pt"),
            options,
            {"foxglove_port": port},
        )
        listener = CloudListener()
        try:
            with OccupancyNodeProcess(params, tmp_path / "node.log") as node:
                drive_until(frame, lambda: len(listener.grids) >= 2)
                node.check_alive("with its Foxglove port taken")
                log = node.log_tail()
        finally:
            listener.ros.close()
    assert f"Foxglove server on 127.0.0.1:{port} did not start" in log and "running without the Foxglove bridge" in log
    assert listener.grids, "the node published no grid"
