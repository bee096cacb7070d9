"""`occupancy_node`: six cameras + LiDAR + odometry in, semantic voxel grid out (markers, cloud, diagnostics).

Wiring only; the work is done by the tested modules it calls:
    callbacks (sensor group) -> conversions (pointcloud.py) -> synchroniser (sync.py) -> keep-latest Worker
    worker thread -> decode + Frame (frame_assembly.py) -> inference.py (a child process running
    the Predictor, fed through shared memory; or the Predictor in this process) -> outputs.py

- Subscription callbacks never wait for the network: a complete set goes into a one-place slot that a
  newer set replaces (counted as dropped "replaced").
- Threads (why, below): the callbacks run on one `SingleThreadedExecutor` thread and stay cheap (a
  cloud is converted, an image keeps its compressed bytes after a header check; only the images of a set
  the worker takes are decoded, on `decode_threads` threads with libjpeg's reduced-size decode); the
  network runs with `inference_threads` torch threads (0 = every core) in its own process; nothing polls:
  the executor blocks in rcl_wait, the worker on a condition variable or the inference process's pipe.
- A dead inference process (killed, out of memory) is counted (`failed inference process`), logged as an
  error and restarted with the next frame; `close()` stops it, so no process outlives the node.
- Logs: one line per reason per `log_throttle_s` with the count of the others (log_throttle.py);
  /diagnostics keys are fixed reasons (stats.py caps them), what varies goes into the log message.
- CameraInfo is kept outside the synchroniser (latest per camera, transient-local QoS by default).
- One bad message (malformed cloud, unknown encoding, corrupt JPEG, a failing frame) is logged,
  counted on /diagnostics, and the node goes on with the next one.
- Time going backwards (a bag loop) clears the synchroniser and the sweep buffer and resets the
  network's temporal state before the next frame.
- `occupancy/markers` and `occupancy/cloud` (relative names: `/occupancy/*` in the root namespace, what
  the launch file and `rviz/tacocc.rviz` use) are built only while someone subscribes; their header is
  the LiDAR stamp and frame. `/diagnostics` goes out every `diagnostics_period_s`.
- The checkpoint is reloaded when the `checkpoint` parameter changes and by the `~/reload_checkpoint`
  service (std_srvs/Trigger), without stopping the node; a checkpoint that does not fit is refused and
  the current weights stay.

Where the time went, and the design it chose (profiled with py-spy under `tacocc drive`: the real fixture
frame, LiDAR 20 Hz, six cameras 12 Hz + CameraInfo, /odom 50 Hz, demo checkpoint, 2-core machine):
- Before, the node made 3.8-4.3 grids/s where the network alone runs at ~12/s, and used one core. The
  profile did not show the interpreter lock as the limit: the worker thread waited for a synchronised set
  55 % of the time, the executor thread sat in rcl_wait 84 % of it, a thread held the lock in ~16 % of the
  samples. Sets were missing because camera images reached the node late: a separate listener saw
  arrival minus stamp p50 13-99 ms, p99 274-437 ms per camera (LiDAR p99 63 ms), so 40 % of the sweeps
  were dropped by the synchroniser (overflow, timeout). The cause is Fast DDS's 512 KiB shared memory
  segment; the project's Fast DDS profile (`tacocc_ros/messages/transport.py`, set before rclpy.init here
  and by `tacocc drive`/`tacocc play`) gives 32 MiB, and images then arrive within 12 ms (p99).
- With the images on time, 35 s each after 10 s, other jobs paused, LiDAR/image queue depths 1/2
  (docs/RESULTS.md section 10 has these and the final figures):

      network in, Fast DDS profile           grids/s   end-to-end p50 / p99 ms   longest gap ms
      thread, defaults (the old node)           3.80        194 / 357                 1130
      process, defaults                         4.77        200 / 350                 1263
      thread, 32 MiB profile                    8.40        154 / 212                  166
      process, 32 MiB profile                   8.94        139 / 242                  230

  so the profile is what made the difference; the network in a child process (`inference: process`, the
  default; inference.py) adds throughput, keeps the ROS process's Python work (deserialising, decoding,
  publishing) off the network's interpreter lock, and lets a crash of the network be reported and
  restarted instead of taking the node down. `inference: thread` is the reference twin (same grids,
  test_occupancy_node_inference.py).
- A 24 MB cloud (refused) used to leave ~24 MB per LiDAR queue slot behind (rmw_fastrtps' preallocated
  reader history keeps each slot at its largest sample): the profile gives readers dynamic history memory,
  and the ROS process maps large blocks and unmaps them when freed (inference.py).
The executor choice (single-threaded; threads.py) has its own measurement in threads.py.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from tacocc_core.checkpoint import CheckpointError
from tacocc_core.config import load_preset
from tacocc_core.frame import Frame
from tacocc_ros.messages.images import ImageDecodeError, check_image
from tacocc_ros.messages.pointcloud import PointCloudError, cloud_to_points
from tacocc_ros.messages.stamps import stamp_to_ns
from tacocc_ros.messages.transport import transport_description
from tacocc_ros.node.calibration import load_calibration
from tacocc_ros.node.extrinsics import make_extrinsics
from tacocc_ros.node.frame_assembly import FrameAssembly, LidarInput
from tacocc_ros.node.frame_builder import PoseBuffer, SweepBuffer, pose_xyzw_to_transform
from tacocc_ros.node.inference import Inference, InferenceProcess, InferenceProcessError, make_inference
from tacocc_ros.node.log_throttle import LogThrottle
from tacocc_ros.node.node_params import NS_PER_S, all_params, camera_inputs, check_parameter, sync_config
from tacocc_ros.node.outputs import CLOUD_TOPIC, MARKERS_TOPIC, MarkerBuilder, build_cloud, build_diagnostics
from tacocc_ros.node.spin import run_until_signal
from tacocc_ros.node.stats import NodeStats
from tacocc_ros.node.sync import DroppedSet, LidarSynchronizer, SyncConfig, SyncedSet, TimeReset
from tacocc_ros.node.sync_message_filters import make_synchronizer, synchronizer_name
from tacocc_ros.node.worker import Worker

SYNC_PARAMS = ("slop_s", "timeout_s", "min_cameras")


def guarded(callback):
    """A subscription callback that logs and counts an unexpected exception instead of ending the spin."""

    @functools.wraps(callback)
    def run(self, *args):
        try:
            callback(self, *args)
        except Exception as err:  # noqa: BLE001 - one bad message must not take the node down
            reason = f"callback {callback.__name__}"
            self.stats.on_failed(reason)
            self._log_error(reason, f"{callback.__name__}: {type(err).__name__}: {err}")

    return run


class OccupancyNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("occupancy_node", **kwargs)
        model_config = self.declare_parameter(
            "model_config",
            "nuscenes_r50_256x704",
            ParameterDescriptor(description="model preset or YAML", read_only=True),
        ).value
        self.config = load_preset(model_config)
        self.cameras = tuple(self.config.cameras.names)
        self.specs = all_params(self.cameras)
        for name, spec in self.specs.items():
            if name != "model_config":
                self.declare_parameter(
                    name, spec.default, ParameterDescriptor(description=spec.description, read_only=spec.read_only)
                )
        self.values = {name: self.get_parameter(name).value for name in self.specs}
        for name, value in self.values.items():
            if (reason := check_parameter(self.specs, name, value)) is not None:
                raise ValueError(f"parameter {reason}")
        v = self.values

        self.log_throttle = LogThrottle(round(v["log_throttle_s"] * NS_PER_S))
        self._sync_lock = threading.Lock()
        self.sync = make_synchronizer(self._sync_config(v), v["use_message_filters"])  # an error before the model loads
        self.predictor = self._make_predictor(v["checkpoint"], v["device"], v["precision"])
        calibration = load_calibration(v["calibration"]) if v["calibration"] else None
        self.extrinsics = make_extrinsics(self, v["extrinsics"], calibration, v["ego_frame"], v["calibration"])
        self.inputs = camera_inputs(v, self.cameras)
        self.grid = self.config.grid.spec()
        self.stats = NodeStats()
        self.poses = PoseBuffer(tolerance_ns=round(v["odom_tolerance_s"] * NS_PER_S))
        self.sweeps = SweepBuffer(self.config.lidar.sweeps)
        self.markers = MarkerBuilder(self.grid, v["max_cubes"] or None)
        self._reset_requested = threading.Event()
        self._closing = False
        self._warned: set[str] = set()
        self.frames = FrameAssembly(
            self.cameras,
            tuple(self.config.cameras.image_size),
            {c.name: c.image_topic for c in self.inputs},
            self.extrinsics,
            self.poses,
            self.sweeps,
            self.stats,
            self._log_error,
            self._warn_once,
            v["decode_threads"],
        )

        reliability = (
            ReliabilityPolicy.RELIABLE if v["sensor_reliability"] == "reliable" else ReliabilityPolicy.BEST_EFFORT
        )
        lidar_qos = QoSProfile(depth=v["lidar_queue_depth"], reliability=reliability)
        image_qos = QoSProfile(depth=v["image_queue_depth"], reliability=reliability)
        sensor_qos = QoSProfile(depth=qos_profile_sensor_data.depth, reliability=reliability)
        durability = (
            DurabilityPolicy.TRANSIENT_LOCAL
            if v["camera_info_durability"] == "transient_local"
            else DurabilityPolicy.VOLATILE
        )
        info_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=durability)
        sensors = MutuallyExclusiveCallbackGroup()
        for cam in self.inputs:
            msg_type = CompressedImage if cam.transport == "compressed" else Image
            self.create_subscription(
                msg_type, cam.image_topic, lambda m, c=cam: self._on_image(c, m), image_qos, callback_group=sensors
            )
            self.create_subscription(
                CameraInfo, cam.info_topic, lambda m, c=cam: self._on_info(c, m), info_qos, callback_group=sensors
            )
        self.create_subscription(PointCloud2, v["lidar_topic"], self._on_cloud, lidar_qos, callback_group=sensors)
        self.create_subscription(Odometry, v["odom_topic"], self._on_odom, sensor_qos, callback_group=sensors)

        out_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_markers = self.create_publisher(MarkerArray, MARKERS_TOPIC, out_qos)
        self.pub_cloud = self.create_publisher(PointCloud2, CLOUD_TOPIC, out_qos)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reload_checkpoint", self._on_reload)
        self.create_timer(v["diagnostics_period_s"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.worker: Worker[SyncedSet] = Worker(self._process, self._on_worker_error, name="tacocc-inference").start()
        self.get_logger().info(self.ready_line())

    # --- setup helpers -------------------------------------------------------------------------------
    def ready_line(self) -> str:
        """What runs, as the startup log says it: preset, checkpoint, device, precision, sync, extrinsics, topics."""
        v = self.values
        return (
            f"ready: preset {self.config.name}, checkpoint {v['checkpoint'] or '(none: random weights)'}, "
            f"device {self.predictor.device}, precision {v['precision']}, {self.inference_line}, "
            f"synchroniser {synchronizer_name(self.sync)}, extrinsics from {self.extrinsics.description}, "
            f"cameras {', '.join(self.cameras)}, LiDAR {v['lidar_topic']}, "
            f"outputs {self.pub_markers.topic_name} {self.pub_cloud.topic_name}, "
            f"transport {transport_description(dict(os.environ))}"
        )

    def _make_predictor(self, checkpoint: str, device: str, precision: str) -> Inference:
        if not checkpoint:
            self.get_logger().warning(
                "NO CHECKPOINT: the network runs with RANDOM WEIGHTS; its output is meaningless "
                "(set the `checkpoint` parameter for real predictions)"
            )
        v = self.values
        predictor, self.inference_line = make_inference(
            v["inference"],
            self.config,
            checkpoint,
            device,
            precision,
            v["inference_threads"],
            v["backend"],
            v["onnx_dir"],
        )
        return predictor

    def _sync_config(self, v: dict) -> SyncConfig:
        return sync_config(v, self.cameras)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(message)

    # rclpy refuses one call site logging at two severities, so each severity has its own call below.
    def _log_error(self, reason: str, message: str) -> None:
        """Log `message` under the fixed `reason`: one line per reason per `log_throttle_s`, then a count."""
        if (line := self.log_throttle.report(reason, message, time.monotonic_ns())) is not None:
            self.get_logger().error(line)

    def _log_warning(self, reason: str, message: str) -> None:
        if (line := self.log_throttle.report(reason, message, time.monotonic_ns())) is not None:
            self.get_logger().warning(line)

    def _log_info(self, reason: str, message: str) -> None:
        if (line := self.log_throttle.report(reason, message, time.monotonic_ns())) is not None:
            self.get_logger().info(line)

    # --- callbacks (sensor group: never wait for the network) ----------------------------------------
    @guarded
    def _on_image(self, cam, msg) -> None:
        self.stats.on_input(cam.image_topic, time.monotonic_ns())
        try:  # the header only: the pixels are decoded on the worker, for the frames it infers
            check_image(msg, source=cam.image_topic)
        except ImageDecodeError as err:
            self.stats.on_failed(f"image {cam.name}")
            self._log_error(f"image {cam.name}", f"image {stamp_to_ns(msg.header.stamp)} refused: {err}")
            return
        with self._sync_lock:
            events = self.sync.add_image(cam.name, stamp_to_ns(msg.header.stamp), msg)
        self._handle(events)

    @guarded
    def _on_info(self, cam, msg: CameraInfo) -> None:
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.isfinite(k).all():
            reason = f"bad CameraInfo {cam.name}"
            self.stats.on_failed(reason)
            self._log_error(
                reason, f"{cam.info_topic}: CameraInfo K has no focal length (kept the previous K): {k.tolist()}"
            )
            return
        self.frames.camera_info[cam.name] = k

    @guarded
    def _on_cloud(self, msg: PointCloud2) -> None:
        topic = self.values["lidar_topic"]
        self.stats.on_input(topic, time.monotonic_ns())
        stamp = stamp_to_ns(msg.header.stamp)
        declared = int(msg.width) * int(msg.height)
        if declared > self.values["max_points"]:  # refused before any decoding: its cost is the copy DDS made
            self.stats.on_failed("oversized PointCloud2")
            self._log_error(
                "oversized PointCloud2",
                f"dropped sweep {stamp}: {topic}: {msg.width}x{msg.height} = {declared} points > max_points "
                f"{self.values['max_points']}",
            )
            return
        try:
            points = cloud_to_points(msg, source=topic)
        except PointCloudError as err:
            self.stats.on_failed("bad PointCloud2")
            self._log_error("bad PointCloud2", f"dropped sweep {stamp}: {err}")
            return
        if len(points) < declared:
            self.stats.on_event("non-finite points dropped")
            self._log_info(
                "non-finite points dropped",
                f"sweep {stamp}: {declared - len(points)} of {declared} points had a non-finite x/y/z and were dropped",
            )
        if len(points) == 0:
            self.stats.on_failed("empty PointCloud2")
            self._log_error("empty PointCloud2", f"dropped sweep {stamp}: {topic}: no finite points")
            return
        with self._sync_lock:
            events = self.sync.add_lidar(stamp, LidarInput(stamp, msg.header.frame_id, points, time.monotonic_ns()))
        self._handle(events)
        self.sweeps.add(stamp, points)

    @guarded
    def _on_odom(self, msg: Odometry) -> None:
        self.stats.on_input(self.values["odom_topic"], time.monotonic_ns())
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        try:
            pose = pose_xyzw_to_transform((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except ValueError as err:
            self.stats.on_failed("bad Odometry")
            self._log_error("bad Odometry", f"{self.values['odom_topic']}: {err}")
            return
        if self.poses.add(stamp_to_ns(msg.header.stamp), pose):
            self.stats.on_event("odometry went back in time")

    def _handle(self, events: list) -> None:
        for event in events:
            if isinstance(event, SyncedSet):
                if self.worker.submit(event):
                    self.stats.on_dropped("replaced")
                if event.missing:
                    self.stats.on_event("degraded")
                    for camera in event.missing:
                        self.stats.on_event(f"degraded {camera}")
            elif isinstance(event, DroppedSet):
                self.stats.on_dropped(event.reason)
                for camera in event.missing:
                    self.stats.on_dropped(f"{event.reason}:{camera}")
                self._log_warning(
                    f"dropped {event.reason}",
                    f"dropped sweep {event.lidar_stamp_ns}: {event.reason}"
                    + (f" (no image from {', '.join(event.missing)})" if event.missing else ""),
                )
            elif isinstance(event, TimeReset):
                self.sweeps.clear()
                self._reset_requested.set()
                self.stats.on_event("time went backwards")
                self._log_warning(
                    "time went backwards",
                    f"time went backwards on {event.source} ({event.previous_ns} -> {event.stamp_ns}): "
                    "buffers cleared, temporal state reset",
                )

    # --- worker thread -------------------------------------------------------------------------------
    def _process(self, synced: SyncedSet) -> None:
        lidar: LidarInput = synced.lidar
        if self._reset_requested.is_set():
            self._reset_requested.clear()
            self.predictor.reset()
        frame = self._build_frame(synced)
        if frame is None:
            return
        try:
            prediction = self.predictor.predict(frame)
        except InferenceProcessError as err:
            self._restart_inference(lidar.stamp_ns, err)
            return
        if prediction.error is not None:
            self.stats.on_failed("network")
            self._log_error("network", f"sweep {lidar.stamp_ns}: {prediction.error}")
            return
        if prediction.temporal_reset is not None:  # the reason (a gap value) goes in the log, not the key
            self.stats.on_event("temporal reset")
            self._log_info(
                "temporal reset",
                f"sweep {lidar.stamp_ns}: temporal reset: {prediction.temporal_reset}",
            )
        ks = [
            (k, n)
            for modality in prediction.k_histogram.values()
            for scale in modality.values()
            for k, n in scale.items()
        ]
        if ks:
            self.stats.on_k(np.repeat([k for k, _ in ks], [n for _, n in ks]))
        self._publish(prediction.labels, lidar)

    def _build_frame(self, synced: SyncedSet) -> Frame | None:
        """Decode and assemble (frame_assembly.py); None (counted) when too few cameras are usable."""
        needed = len(self.cameras) if self.sync.config.min_cameras is None else self.sync.config.min_cameras
        return self.frames.build(synced, needed, self.values["odom_wait_s"])

    def _publish(self, labels: np.ndarray, lidar: LidarInput) -> None:
        if not self.context.ok():  # shutting down
            return
        if self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(self.markers.build(labels, lidar.stamp_ns, lidar.frame_id))
        if self.pub_cloud.get_subscription_count() > 0:
            self.pub_cloud.publish(build_cloud(labels, self.grid, lidar.stamp_ns, lidar.frame_id))
        if self.values["latency_from"] == "arrival":
            self.stats.on_published(lidar.arrival_ns, time.monotonic_ns())
        else:
            self.stats.on_published(lidar.stamp_ns, self.get_clock().now().nanoseconds)

    def _restart_inference(self, stamp_ns: int, err: InferenceProcessError) -> None:
        """The inference process died: count it, say so, start a fresh one (the next frame uses it)."""
        if self._closing:  # close() interrupted the frame: nothing died
            return
        self.stats.on_failed("inference process")
        self.get_logger().error(f"sweep {stamp_ns}: {err}; restarting it")
        if not self.context.ok():
            return
        try:
            self.predictor.restart()
        except (InferenceProcessError, CheckpointError) as restart_err:
            self.stats.on_failed("inference process restart")
            self.get_logger().error(f"the inference process did not restart: {restart_err}")
            return
        self.stats.on_event("inference process restarts")
        self.get_logger().warning(f"inference process restarted (process {self.predictor.pid})")

    def _on_worker_error(self, synced: SyncedSet, err: BaseException) -> None:
        reason = f"frame {type(err).__name__}"
        self.stats.on_failed(reason)
        if not self.context.ok():
            return
        self._log_error(reason, f"sweep {synced.lidar_stamp_ns} failed: {type(err).__name__}: {err}")

    # --- services, parameters, diagnostics -----------------------------------------------------------
    def _reload(self, path: str) -> str | None:
        """Reload weights from `path`; the reason on failure (the current weights stay)."""
        if not path:
            return "no checkpoint path set (random weights cannot be reloaded)"
        try:
            self.predictor.reload(path)
        except (CheckpointError, InferenceProcessError) as err:
            self.stats.on_failed("checkpoint reload")
            return str(err)
        self.stats.on_event("checkpoint reloads")
        self.get_logger().info(f"reloaded checkpoint {path}")
        return None

    def _on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        reason = self._reload(self.values["checkpoint"])
        response.success = reason is None
        response.message = reason or f"reloaded {self.values['checkpoint']}"
        return response

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        for name, value in changes.items():
            if (reason := check_parameter(self.specs, name, value)) is not None:
                return SetParametersResult(successful=False, reason=reason)
        if "checkpoint" in changes and changes["checkpoint"] != self.values["checkpoint"]:
            if (reason := self._reload(changes["checkpoint"])) is not None:
                return SetParametersResult(successful=False, reason=f"checkpoint: {reason}")
        merged = {**self.values, **{k: v for k, v in changes.items() if k in self.specs}}
        if any(name in changes for name in SYNC_PARAMS) or any(name.endswith(".offset_s") for name in changes):
            config = self._sync_config(merged)
            with self._sync_lock:
                if isinstance(self.sync, LidarSynchronizer):  # keep its buffers and its notion of time
                    self.sync.config = config
                else:
                    self.sync = make_synchronizer(config, merged["use_message_filters"])
        if "max_cubes" in changes:
            self.markers.max_cubes = merged["max_cubes"] or None
        if "odom_tolerance_s" in changes:
            self.poses.tolerance_ns = round(merged["odom_tolerance_s"] * NS_PER_S)
        self.values = merged
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        for line in self.log_throttle.flush(time.monotonic_ns()):  # counts of reasons that went quiet
            self.get_logger().warning(line)
        snapshot = self.stats.snapshot(time.monotonic_ns())
        self.pub_diagnostics.publish(
            build_diagnostics(snapshot, self.get_clock().now().nanoseconds, hardware_id=str(self.predictor.device))
        )

    def close(self) -> None:
        """Stop the worker, the decoders and the inference process (abandoning its frame; a thread's finishes)."""
        self._closing = True
        if isinstance(self.predictor, InferenceProcess):
            self.predictor.interrupt()  # the frame in progress is abandoned, not awaited
        self.worker.stop()
        self.frames.close()
        if isinstance(self.predictor, InferenceProcess):
            self.predictor.close(timeout_s=5.0)


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT or SIGTERM (shutdown order: `spin.py`); 0 on a clean stop, 1 on a failed start."""
    return run_until_signal(OccupancyNode, "occupancy_node", args)


if __name__ == "__main__":
    sys.exit(main())
