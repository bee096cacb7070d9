"""What arrives while a bag plays through the occupancy node: its grids, the bag's labels, arrival times.

`ReplayRecorder` is an rclpy node (in the private context of a `RosHandle`) subscribed to the node's
`/occupancy/cloud`, to `/diagnostics`, to the bag's `/occupancy/gt` and to `/LIDAR_TOP`. Its callbacks
only note the monotonic arrival time and keep the serialised bytes (raw subscriptions), so that decoding
never delays the arrival time of the next message; `pass_result()` decodes them afterwards:

- a grid cloud (x, y, z, label of the occupied voxel centres) -> (X, Y, Z) uint8 on the model grid, 0 where
  no voxel is listed (the inverse of `tacocc_ros.node.outputs.build_cloud`);
- a label cloud -> `labels_from_cloud` on the bag's label grid, resampled to the model grid as `bag_frames`
  does;
- latency per LiDAR stamp = arrival of its grid - arrival of the sweep, both at this recorder.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import PointCloud2

from tacocc_core.bags.topics import LABELS_TOPIC, LIDAR_TOPIC
from tacocc_core.data.label_resample import resample_labels
from tacocc_core.geometry import GridSpec
from tacocc_ros.bags.bag_frames import labels_from_cloud
from tacocc_ros.messages.stamps import stamp_to_ns
from tacocc_ros.node.outputs import CLOUD_TOPIC
from tacocc_ros.tooling.node_process import RosHandle

GRID_TOPIC = "/" + CLOUD_TOPIC  # the node in the root namespace, alone or launched
DIAGNOSTICS_NAME = "occupancy"  # part of the node's DiagnosticStatus name ("tacocc_ros: occupancy")


def cloud_to_grid(msg: PointCloud2, grid: GridSpec, source: str = GRID_TOPIC) -> np.ndarray:
    """The node's grid cloud (x, y, z, label per occupied voxel centre) -> (grid.shape) uint8, 0 = empty.

    The same layout as the bag's label clouds, read by the same code; PointCloudError names `source` when a
    field is missing or a centre lies outside the grid.
    """
    return labels_from_cloud(msg, grid, source)


@dataclass
class PassResult:
    """One pass of a bag: grids by LiDAR stamp, labels by stamp, latency (ms) by stamp, last diagnostics."""

    preds: dict[int, np.ndarray] = field(default_factory=dict)
    gts: dict[int, np.ndarray] = field(default_factory=dict)
    latency_ms: dict[int, float] = field(default_factory=dict)
    diagnostics: dict[str, str] = field(default_factory=dict)


def _header_stamp(data: bytes) -> int:
    return stamp_to_ns(deserialize_message(data, PointCloud2).header.stamp)


class ReplayRecorder:
    """Subscriptions of one recording session; `start_pass()` forgets the previous pass's messages.

    Args:
        model_grid: the model's grid (the node's output grid).
    """

    def __init__(self, model_grid: GridSpec) -> None:
        self.model_grid = model_grid
        self._lock = threading.Lock()
        self._grids: list[tuple[int, bytes]] = []
        self._labels: list[bytes] = []
        self._sweeps: dict[int, int] = {}
        self._diagnostics: list[tuple[int, dict[str, str]]] = []
        self.ros = RosHandle("tacocc_replay_recorder")
        node = self.ros.node
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(PointCloud2, GRID_TOPIC, self._on_grid, reliable, raw=True)
        node.create_subscription(PointCloud2, LABELS_TOPIC, self._on_labels, reliable, raw=True)
        node.create_subscription(PointCloud2, LIDAR_TOPIC, self._on_sweep, reliable, raw=True)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 20)

    # --- callbacks (spin thread): note the time, keep the bytes ----------------------------------------
    def _on_grid(self, data: bytes) -> None:
        arrival = time.monotonic_ns()
        with self._lock:
            self._grids.append((arrival, data))

    def _on_labels(self, data: bytes) -> None:
        with self._lock:
            self._labels.append(data)

    def _on_sweep(self, data: bytes) -> None:
        arrival = time.monotonic_ns()
        stamp = _header_stamp(data)
        with self._lock:
            self._sweeps.setdefault(stamp, arrival)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if DIAGNOSTICS_NAME in status.name:
                with self._lock:
                    self._diagnostics.append((time.monotonic_ns(), {kv.key: kv.value for kv in status.values}))

    # --- between and after passes -----------------------------------------------------------------------
    def matched_publishers(self, topic: str) -> int:
        return self.ros.node.count_publishers(topic)

    def start_pass(self) -> None:
        with self._lock:
            self._grids.clear()
            self._labels.clear()
            self._sweeps.clear()

    def grid_stamps(self) -> set[int]:
        """Stamps of the grids received in this pass after their sweeps (decodes only the headers)."""
        with self._lock:
            grids, sweeps = list(self._grids), dict(self._sweeps)
        stamps = ((arrival, _header_stamp(data)) for arrival, data in grids)
        return {stamp for arrival, stamp in stamps if stamp in sweeps and arrival >= sweeps[stamp]}

    def latest_diagnostics(self) -> tuple[int, dict[str, str]] | None:
        """(arrival ns, values) of the newest node diagnostics, or None."""
        with self._lock:
            return self._diagnostics[-1] if self._diagnostics else None

    def pass_result(self, label_grid: GridSpec | None, label_source: str) -> PassResult:
        """Decode what this pass received (a stamp received twice keeps its first grid after its sweep).

        Args:
            label_grid: the grid of the bag's `/occupancy/gt` clouds (its calibration.yaml); None: no labels.
            label_source: names the bag in errors about a label cloud.
        """
        with self._lock:
            grids, labels, sweeps = list(self._grids), list(self._labels), dict(self._sweeps)
            diagnostics = self._diagnostics[-1][1] if self._diagnostics else {}
        result = PassResult(diagnostics=dict(diagnostics))
        for arrival, data in grids:
            msg = deserialize_message(data, PointCloud2)
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp in result.preds or (stamp in sweeps and arrival < sweeps[stamp]):
                continue  # a repeat, or the late grid of an earlier pass (its sweep came again after it)
            result.preds[stamp] = cloud_to_grid(msg, self.model_grid)
            if stamp in sweeps:
                result.latency_ms[stamp] = (arrival - sweeps[stamp]) / 1e6
        if label_grid is not None:
            for data in labels:
                msg = deserialize_message(data, PointCloud2)
                stamp = stamp_to_ns(msg.header.stamp)
                where = f"{label_source}: {LABELS_TOPIC} at {stamp} ns"
                on_labels = labels_from_cloud(msg, label_grid, where)
                result.gts[stamp] = resample_labels(on_labels, label_grid, self.model_grid)
        return result

    def close(self) -> None:
        self.ros.close()
