"""occupancy_node as a process over real DDS: what its `ready` line says, its output names, a clean stop.

The node runs the demo checkpoint on the real nuScenes fixture frame, with the calibration file that
`tacocc calibration --calib-json` writes from the fixture's calib.json. Kept apart from
test_occupancy_node.py (the inference checks) because these pin the process's life: start, names, stop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_domains import in_process_domain  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from tacocc_core.bags.cloud_layout import LIDAR_DTYPE  # noqa: E402
from tacocc_core.bags.topics import camera_topics  # noqa: E402
from tacocc_core.data.nuscenes_reader import read_pcd_bin  # noqa: E402
from tacocc_ros.messages.pointcloud import array_to_cloud  # noqa: E402
from tacocc_ros.messages.stamps import make_header, stamp_to_ns  # noqa: E402
from tacocc_ros.node import sync_message_filters  # noqa: E402
from tacocc_ros.node.occupancy_node import OccupancyNode  # noqa: E402
from tacocc_ros.tooling.load_driver import child_pids  # noqa: E402
from tacocc_ros.tooling.node_process import (  # noqa: E402
    NODE_NAME,
    OccupancyNodeProcess,
    RosHandle,
    child_environment,
)

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
RVIZ_CONFIGS = sorted((REPO / "rviz").glob("*.rviz"))
CHECKPOINT = REPO / "checkpoints" / "demo.pt"
RVIZ_TYPES = {
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
}


def node_params(calibration: Path, **extra) -> dict:
    return {
        "model_config": "demo",
        "checkpoint": str(CHECKPOINT),
        "device": "cpu",
        "calibration": str(calibration),
        "extrinsics": "calibration",
        "sensor_reliability": "reliable",
        **extra,
    }


@pytest.fixture(scope="module")
def calibration_file(nuscenes_frame_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("calib") / "calibration.yaml"
    command = [
        sys.executable,
        "-m",
        "tacocc_core.cli",
        "calibration",
        "--calib-json",
        str(nuscenes_frame_dir / "calib.json"),
    ]
    result = subprocess.run(
        [*command, "--out", str(out), "--config", "demo"], capture_output=True, text=True, env=child_environment()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


class FramePlayer:
    """Publishes the fixture keyframe (6 JPEGs, CameraInfo, the sweep, odometry) and records the outputs."""

    def __init__(self, frame_dir: Path) -> None:
        self.calib = json.loads((frame_dir / "calib.json").read_text())
        self.frame_dir = frame_dir
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("fixture_player", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        n, cams = self.node, list(self.calib["cameras"])
        self.images = {c: n.create_publisher(CompressedImage, camera_topics(c)[0], reliable) for c in cams}
        self.infos = {c: n.create_publisher(CameraInfo, f"/{c}/camera_info", latched) for c in cams}
        self.lidar = n.create_publisher(PointCloud2, "/LIDAR_TOP", reliable)
        self.odom = n.create_publisher(Odometry, "/odom", reliable)
        self.clouds: list[int] = []
        self.markers: list[int] = []
        n.create_subscription(
            PointCloud2, "/occupancy/cloud", lambda m: self.clouds.append(stamp_to_ns(m.header.stamp)), reliable
        )
        n.create_subscription(
            MarkerArray, "/occupancy/markers", lambda m: self.markers.append(len(m.markers)), reliable
        )
        self.jpegs = {c: (frame_dir / e["file"]).read_bytes() for c, e in self.calib["cameras"].items()}
        points = read_pcd_bin(frame_dir / self.calib["lidar"]["file"])
        self.points = np.zeros(len(points), dtype=LIDAR_DTYPE)
        for i, name in enumerate(LIDAR_DTYPE.names):
            self.points[name] = points[:, i]
        self.stamp0 = round(self.calib["timestamp_s"] * 1e9)

    def spin_until(self, condition, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def wait_subscribed(self) -> None:
        pubs = [*self.images.values(), self.lidar, self.odom]
        self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), "the node's subscriptions")

    def publish_frame(self, index: int) -> int:
        """Frame `index`: the fixture frame 0.1 s later per index (the same data, a moving stamp)."""
        stamp = self.stamp0 + index * 100_000_000
        for cam, entry in self.calib["cameras"].items():
            k = np.asarray(entry["cam2img"], dtype=np.float64).reshape(-1).tolist()
            self.infos[cam].publish(CameraInfo(header=make_header(stamp, cam), height=900, width=1600, k=k))
        ego2global = np.asarray(self.calib["ego2global"])
        odom = Odometry(header=make_header(stamp, "map"), child_frame_id="base_link")
        p, q = odom.pose.pose.position, odom.pose.pose.orientation
        p.x, p.y, p.z = map(float, ego2global[:3, 3])
        q.x, q.y, q.z, q.w = map(float, Rotation.from_matrix(ego2global[:3, :3]).as_quat())
        self.odom.publish(odom)
        for cam, jpeg in self.jpegs.items():
            self.images[cam].publish(CompressedImage(header=make_header(stamp, cam), format="jpeg", data=jpeg))
        self.lidar.publish(array_to_cloud(self.points, make_header(stamp, "LIDAR_TOP"), is_dense=True))
        return stamp

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def rviz_topics() -> dict[str, str]:
    """Topic -> message type of every marker and cloud display in rviz/*.rviz (what shows the node's outputs)."""
    topics = {}
    for path in RVIZ_CONFIGS:
        displays = yaml.safe_load(path.read_text())["Visualization Manager"]["Displays"]
        topics |= {d["Topic"]["Value"]: RVIZ_TYPES[d["Class"]] for d in displays if d["Class"] in RVIZ_TYPES}
    assert topics, f"no MarkerArray or PointCloud2 display in {RVIZ_CONFIGS}"
    return topics


def test_node_alone_publishes_what_rviz_shows_logs_what_runs_and_stops_cleanly(
    nuscenes_frame_dir, calibration_file, tmp_path
):
    log = tmp_path / "node.log"
    # /diagnostics every 2 ms: a timer callback is nearly always in flight when SIGINT comes.
    process = OccupancyNodeProcess(node_params(calibration_file, diagnostics_period_s=0.002), log)
    player = None
    with process:
        ready = [line for line in log.read_text().splitlines() if "ready:" in line]
        assert len(ready) == 1, log.read_text()[-3000:]
        line = ready[0]
        for part in (
            "preset demo",
            f"checkpoint {CHECKPOINT}",
            "device cpu",
            "precision fp32",
            "synchroniser tacocc LidarSynchronizer",
            f"extrinsics from calibration file {calibration_file}",
            "outputs /occupancy/markers /occupancy/cloud",
            "inference in process",
            "glibc malloc maps blocks of 1024 KiB or more and unmaps them when freed here",
            "transport Fast DDS profile for large messages",
        ):
            assert part in line, f"{part!r} not in the ready line: {line}"
        inference_pid = int(line.split("inference in process ")[1].split()[0])
        children = child_pids(process.pid)  # the inference process and multiprocessing's resource tracker
        assert inference_pid in children, (inference_pid, children)

        # The node's own publishers, as the ROS graph lists them, are what the RViz config displays.
        graph = process._ros.node
        published = dict(graph.get_publisher_names_and_types_by_node("occupancy_node", "/"))
        for topic, msg_type in rviz_topics().items():
            assert msg_type in published.get(topic, []), (
                f"RViz shows {topic} ({msg_type}); the node publishes {published}"
            )

        player = FramePlayer(nuscenes_frame_dir)
        try:
            player.wait_subscribed()
            stamp = player.publish_frame(0)
            player.spin_until(lambda: stamp in player.clouds and player.markers, "the grid of the fixture frame")
            for i in range(1, 21):  # the worker and the callbacks are busy when the stop comes
                player.publish_frame(i)
        finally:
            player.close()
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    assert "never retrieved" not in text, text[-3000:]
    assert "context is invalid" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert not Path(f"/proc/{inference_pid}").exists(), "the inference process outlived the node"
    deadline = time.monotonic() + 10  # the resource tracker ends once the node's end of its pipe closes
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children if Path(f"/proc/{pid}").exists()}
    assert not left, f"children of the node outlived it: {left}"


@pytest.mark.skipif(sync_message_filters.have_message_filters(), reason="message_filters is importable here")
def test_asking_for_message_filters_without_it_stops_at_startup(calibration_file):
    """The node is built here (the process's way out of a startup error, exit 1 with the message, is
    test_replay.py's test_a_node_that_exits_early_raises_with_its_log): construction fails before the model."""
    params = node_params(calibration_file, use_message_filters=True)
    context = Context()
    rclpy.init(context=context, domain_id=in_process_domain("startup_error"))
    try:
        with pytest.raises(RuntimeError, match="use_message_filters is true but message_filters is not importable"):
            OccupancyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    finally:
        rclpy.try_shutdown(context=context)


def test_a_second_node_of_the_name_is_named_in_the_start_error():
    """Two nodes named occupancy_node on the domain (a node built in the test process beside the node process)
    make the graph lookups by name read either: the start's timeout error names them."""
    first, second = RosHandle(NODE_NAME), RosHandle(NODE_NAME)
    try:
        deadline = time.monotonic() + 30
        while not (note := OccupancyNodeProcess._namesakes(first.node)):
            assert time.monotonic() < deadline, first.node.get_node_names_and_namespaces()
            time.sleep(0.1)
        assert f"holds 2 nodes named /{NODE_NAME}" in note
    finally:
        first.close()
        second.close()
