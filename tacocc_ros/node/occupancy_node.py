"""`occupancy_node`: six cameras + LiDAR + odometry in, semantic voxel grid out (markers, cloud, diagnostics).

A managed (lifecycle) node; with `autostart` (the default) it configures and activates itself at startup:
- configure: parameters checked, the model loaded and its network process started, the calibration read,
  the worker thread and the image decoders started, `~/reload_checkpoint` offered. A failure is logged
  with its reason and the node stays unconfigured.
- activate: input subscriptions (QoS adapted to the publishers, inputs.py) and the publishers created,
  a fresh synchroniser, the temporal state reset before the next frame; /diagnostics every
  `diagnostics_period_s`.
- deactivate: subscriptions, publishers and timers destroyed (input is dropped, nothing is published;
  the frame in progress finishes unpublished).
- cleanup: the worker, the decoders and the network process stopped, the model released.
- shutdown (from any state) releases what the state holds; `ros2 run` then exits.
A transition the current state does not allow (one asked twice) is refused with its reason in the log and
counted on /diagnostics; the node stays in its state and keeps running.

Wiring only; the work is done by the tested modules it calls:
    callbacks (sensor group) -> conversions (pointcloud.py) -> synchroniser (sync.py) -> keep-latest Worker
    worker thread -> decode + Frame (frame_assembly.py) -> inference.py (a child process running
    the Predictor, fed through shared memory) -> outputs.py

- Subscription callbacks never wait for the network: a complete set goes into a one-place slot that a
  newer set replaces (counted as dropped "replaced").
- Threads: the callbacks run on one `SingleThreadedExecutor` thread (spin.py) and stay cheap (a cloud is
  converted, an image keeps its compressed bytes after a header check; only the images of a set the worker
  takes are decoded, on `decode_threads` threads); the network runs with `inference_threads` torch threads
  (0 = every core) in its own process, so a crash of the network is reported and it is restarted with the
  next frame; nothing polls.
- Logs: one line per reason per `log_throttle_s` with the count of the others (log_throttle.py);
  /diagnostics keys are fixed reasons (stats.py caps them), what varies goes into the log message.
- CameraInfo is kept outside the synchroniser (latest per camera).
- One bad message (malformed cloud, unknown encoding, corrupt JPEG, a failing frame) is logged,
  counted on /diagnostics, and the node goes on with the next one.
- Time going backwards (a bag loop) clears the synchroniser and the sweep buffer and resets the
  network's temporal state before the next frame.
- `occupancy/markers` and `occupancy/cloud` (relative names: `/occupancy/*` in the root namespace) are
  built only while someone subscribes; their header is the LiDAR stamp and frame. The latency on
  /diagnostics is the node's own: the LiDAR message's arrival to the publication of its grid.
- With `foxglove_port` > 0 the same frames also go to the Foxglove app over a WebSocket
  (foxglove_bridge.py), started at configure and stopped at cleanup.
- The checkpoint is reloaded when the `checkpoint` parameter changes and by the `~/reload_checkpoint`
  service (std_srvs/Trigger), without stopping the node; a checkpoint that does not fit is refused and
  the current weights stay.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from tacocc_core.checkpoint_error import CheckpointError
from tacocc_core.config import load_preset
from tacocc_core.frame import Frame
from tacocc_core.predictor_options import Precision
from tacocc_ros.messages.transport import transport_description
from tacocc_ros.node.calibration import load_calibration
from tacocc_ros.node.extrinsics import make_extrinsics
from tacocc_ros.node.foxglove_bridge import FoxgloveBridge, start_bridge
from tacocc_ros.node.frame_assembly import FrameAssembly, LidarInput
from tacocc_ros.node.frame_builder import PoseBuffer, SweepBuffer
from tacocc_ros.node.inference import InferenceProcess, InferenceProcessError, make_inference
from tacocc_ros.node.input_qos import QosChoice, adapted_profile, unheard
from tacocc_ros.node.inputs import NodeInputs
from tacocc_ros.node.lifecycle_guard import refuse_with_reason
from tacocc_ros.node.log_throttle import LogThrottle
from tacocc_ros.node.node_params import NS_PER_S, all_params, camera_inputs, check_parameter, sync_config
from tacocc_ros.node.outputs import CLOUD_TOPIC, MARKERS_TOPIC, MarkerBuilder, build_cloud, build_diagnostics
from tacocc_ros.node.sensor_callbacks import SensorCallbacks
from tacocc_ros.node.spin import run_until_signal
from tacocc_ros.node.stats import NodeStats
from tacocc_ros.node.sync import LidarSynchronizer, SyncConfig, SyncedSet
from tacocc_ros.node.sync_message_filters import make_synchronizer, synchronizer_name
from tacocc_ros.node.worker import Worker

SYNC_PARAMS = ("slop_s", "timeout_s", "min_cameras")
GRAPH_CHECK_PERIOD_S = 1.0  # how often the inputs re-adapt their QoS and look for publishers they cannot hear
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class OccupancyNode(SensorCallbacks, LifecycleNode):
    """The occupancy node (module docstring).

    `OccupancyNode(**node_kwargs)` with `autostart` comes up active, or raises the reason configure or
    activate failed.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("occupancy_node", **kwargs)
        model_config: str = self.declare_parameter(
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
        self.stats = NodeStats()
        self.log_throttle = LogThrottle(round(self.specs["log_throttle_s"].default * NS_PER_S))
        self.active = False
        self.finalized = False
        self.configure_error: str | None = None
        self._configured = False
        self._held: list[Callable[[], object]] = []  # what configure started, released in reverse order
        self._sync_lock = threading.Lock()
        self._output_lock = threading.Lock()  # publishers are destroyed (deactivate) while the worker publishes
        self._reset_requested = threading.Event()
        self._closing = False
        self._warned: set[str] = set()
        self._active_entities: list[Any] = []  # publishers and timers of the active state
        self.node_inputs: NodeInputs | None = None
        self.foxglove: FoxgloveBridge | None = None  # foxglove_port > 0: the Foxglove WebSocket (foxglove_bridge.py)
        self.unheard: dict[str, list[str]] = {}
        refuse_with_reason(self, self._on_refused)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.values["autostart"]:
            if self.trigger_configure() != SUCCESS:
                raise RuntimeError(self.configure_error or "configure failed")
            if self.trigger_activate() != SUCCESS:
                raise RuntimeError("activate failed (see the log)")

    # --- lifecycle -----------------------------------------------------------------------------------
    def _on_refused(self, reason: str) -> None:
        self.stats.on_event("refused transitions")
        self.get_logger().warning(reason)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure_error = None
        self.values = {name: self.get_parameter(name).value for name in self.specs}
        try:
            for name, value in self.values.items():
                if (reason := check_parameter(self.specs, name, value)) is not None:
                    raise ValueError(f"parameter {reason}")
            self._configure(self.values)
        except Exception as err:  # noqa: BLE001 - a failed configure is reported and leaves the node unconfigured
            self.configure_error = f"{type(err).__name__}: {err}"
            self.get_logger().error(f"configure failed: {self.configure_error}")
            self._release()
            return FAILURE
        self.get_logger().info(self.ready_line())
        return SUCCESS

    def _configure(self, v: dict) -> None:
        self.log_throttle = LogThrottle(round(v["log_throttle_s"] * NS_PER_S))
        self.sync = make_synchronizer(self._sync_config(v), v["use_message_filters"])  # an error before the model
        calibration = load_calibration(v["calibration"], note=self.get_logger().warning) if v["calibration"] else None
        info_choice = QosChoice("auto", v["camera_info_durability"], 100)
        static_offers = [p.qos_profile for p in self.get_publishers_info_by_topic("/tf_static")]
        static_qos = adapted_profile(static_offers, info_choice) if static_offers else None  # None: tf2's latched
        self.tf_qos = (adapted_profile([], QosChoice(v["sensor_reliability"], "volatile", 100)), static_qos)
        self.extrinsics = make_extrinsics(
            self, v["extrinsics"], calibration, v["ego_frame"], v["calibration"], self.tf_qos
        )
        if (listener := getattr(self.extrinsics, "listener", None)) is not None:
            self._held.append(listener.unregister)  # TF's subscriptions
        self._closing = False
        self.predictor = self._make_predictor(v["checkpoint"], v["device"], v["precision"])
        self._held.append(functools.partial(self.predictor.close, timeout_s=5.0))
        self._configured = True
        self.inputs = camera_inputs(v, self.cameras)
        self.grid = self.config.grid.spec()
        self.poses = PoseBuffer(tolerance_ns=round(v["odom_tolerance_s"] * NS_PER_S))
        self.sweeps = SweepBuffer(self.config.lidar.sweeps)
        self.markers = MarkerBuilder(self.grid, v["max_cubes"] or None)
        height, width = self.config.cameras.image_size
        self.frames = FrameAssembly(
            self.cameras,
            (height, width),
            {c.name: c.image_topic for c in self.inputs},
            self.extrinsics,
            self.poses,
            self.sweeps,
            self.stats,
            self._log_error,
            self._warn_once,
            v["decode_threads"],
        )
        self._held.append(self.frames.close)
        service = self.create_service(Trigger, "~/reload_checkpoint", self._on_reload)
        self._held.append(lambda: self.destroy_service(service))
        self.worker: Worker[SyncedSet] = Worker(self._process, self._on_worker_error, name="tacocc-inference").start()
        self._held.append(functools.partial(self._stop_worker, self.predictor, self.worker))
        self.foxglove = start_bridge(self)  # a port in use is logged and counted; the node goes on without it
        if self.foxglove is not None:
            self._held.append(self._close_foxglove)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self.values
        with self._sync_lock:
            self.sync = make_synchronizer(self._sync_config(v), v["use_message_filters"])
        self.sweeps.clear()
        self._reset_requested.set()  # what the network remembers is from before the deactivation
        out_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        with self._output_lock:
            self.pub_markers = self.create_publisher(MarkerArray, MARKERS_TOPIC, out_qos)
            self.pub_cloud = self.create_publisher(PointCloud2, CLOUD_TOPIC, out_qos)
            self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self.active = True
        self._active_entities = [
            self.pub_markers,
            self.pub_cloud,
            self.pub_diagnostics,
            self.create_timer(v["diagnostics_period_s"], self._publish_diagnostics),
            self.create_timer(GRAPH_CHECK_PERIOD_S, self._check_inputs),
        ]
        self.node_inputs = NodeInputs(
            self,
            self.inputs,
            v,
            self._on_image,
            self._on_info,
            self._on_cloud,
            self._on_odom,
            MutuallyExclusiveCallbackGroup(),
            lambda topic, line: self._warn_once(f"legacy {topic}", line),
        )
        self.get_logger().info(f"active: inputs {self.node_inputs.profiles()}")
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info("inactive: no input, no output")
        return SUCCESS

    def _deactivate(self) -> None:
        if self.node_inputs is not None:
            self.node_inputs.destroy()
            self.node_inputs = None
        with self._output_lock:
            self.active = False
            for entity in self._active_entities:
                if hasattr(entity, "cancel"):
                    entity.cancel()
                    self.destroy_timer(entity)
                else:
                    self.destroy_publisher(entity)
            self._active_entities = []

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("unconfigured: model and network process released")
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._release()
        self.finalized = True
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._release()
        return SUCCESS

    @staticmethod
    def _stop_worker(predictor: InferenceProcess, worker: Worker[SyncedSet]) -> None:
        predictor.interrupt()  # the frame in progress is abandoned, not awaited
        worker.stop()

    def _release(self) -> None:
        """Stop the worker, the service, the decoders and the network process (idempotent).

        In the reverse order of `_configure`; the model goes with its process.
        """
        self._closing = True
        while self._held:
            self._held.pop()()
        self._configured = False

    def close(self) -> None:
        """Release everything the current state holds (the network process included); the node stays."""
        self._deactivate()
        self._release()

    # --- setup helpers -------------------------------------------------------------------------------
    def ready_line(self) -> str:
        """What runs, as the configure log says it: preset, checkpoint, device, precision, sync, extrinsics, topics."""
        v = self.values
        return (
            f"ready: preset {self.config.name}, checkpoint {v['checkpoint'] or '(none: random weights)'}, "
            f"device {self.predictor.device}, precision {v['precision']}, {self.inference_line}, "
            f"synchroniser {synchronizer_name(self.sync)}, extrinsics from {self.extrinsics.description}, "
            f"cameras {', '.join(self.cameras)}, LiDAR {v['lidar_topic']} (intensity x "
            f"{v['lidar_intensity_scale']:g}), outputs {self.resolve_topic_name(MARKERS_TOPIC)} "
            f"{self.resolve_topic_name(CLOUD_TOPIC)}, "
            f"transport {transport_description(dict(os.environ))}"
        )

    def _make_predictor(self, checkpoint: str, device: str, precision: Precision) -> InferenceProcess:
        if not checkpoint:
            self.get_logger().warning(
                "NO CHECKPOINT: the network runs with RANDOM WEIGHTS; its output is meaningless "
                "(set the `checkpoint` parameter for real predictions)"
            )
        predictor, self.inference_line = make_inference(
            self.config,
            checkpoint,
            device,
            precision,
            self.values["inference_threads"],
            self.values["backend"],
            self.values["onnx_dir"],
        )
        return predictor

    def _sync_config(self, v: dict) -> SyncConfig:
        return sync_config(v, self.cameras)

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
        if self.foxglove is not None and self.active:
            self.foxglove.submit(frame, prediction.labels, synced, lidar)

    def _close_foxglove(self) -> None:
        if self.foxglove is not None:
            self.foxglove.close()
            self.foxglove = None

    def _build_frame(self, synced: SyncedSet) -> Frame | None:
        """Decode and assemble (frame_assembly.py); None (counted) when too few cameras are usable."""
        needed = len(self.cameras) if self.sync.config.min_cameras is None else self.sync.config.min_cameras
        return self.frames.build(synced, needed, self.values["odom_wait_s"])

    def _publish(self, labels: np.ndarray, lidar: LidarInput) -> None:
        """The outputs of one frame, while the node is active (another output, a bridge, goes here too)."""
        with self._output_lock:
            if not self.active or not self.context.ok():  # deactivated or shutting down
                return
            if self.pub_markers.get_subscription_count() > 0:
                self.pub_markers.publish(self.markers.build(labels, lidar.stamp_ns, lidar.frame_id))
            if self.pub_cloud.get_subscription_count() > 0:
                self.pub_cloud.publish(build_cloud(labels, self.grid, lidar.stamp_ns, lidar.frame_id))
        self.stats.on_published(lidar.arrival_ns, time.monotonic_ns())

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
        merged = {**self.values, **{k: v for k, v in changes.items() if k in self.specs}}
        if not self._configured:  # read again by configure
            self.values = merged
            return SetParametersResult(successful=True)
        if "checkpoint" in changes and changes["checkpoint"] != self.values["checkpoint"]:
            if (reason := self._reload(changes["checkpoint"])) is not None:
                return SetParametersResult(successful=False, reason=f"checkpoint: {reason}")
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

    def _check_inputs(self) -> None:
        """Re-adapt the inputs' QoS; log (throttled) and keep for /diagnostics the publishers not heard."""
        if self.node_inputs is None:
            return
        found = self.node_inputs.refresh()
        tf_profiles = dict(zip(("/tf", "/tf_static"), self.tf_qos, strict=True))
        if hasattr(self.extrinsics, "listener"):  # TF: tf2_ros's subscriptions, with the profiles chosen at configure
            for topic, profile in tf_profiles.items():
                want = profile or QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
                publishers = self.get_publishers_info_by_topic(topic)
                if reasons := unheard(publishers, want, "tf2_msgs/msg/TFMessage"):
                    found[topic] = reasons
        for topic, reasons in found.items():
            self._log_warning(f"unheard {topic}", f"{topic}: publishers the node cannot hear: {'; '.join(reasons)}")
        self.unheard = found

    def _publish_diagnostics(self) -> None:
        for line in self.log_throttle.flush(time.monotonic_ns()):  # counts of reasons that went quiet
            self.get_logger().warning(line)
        snapshot = self.stats.snapshot(time.monotonic_ns())
        unheard_counts = {topic: len(reasons) for topic, reasons in self.unheard.items()}
        with self._output_lock:
            if self.active:
                self.pub_diagnostics.publish(
                    build_diagnostics(
                        snapshot,
                        self.get_clock().now().nanoseconds,
                        hardware_id=str(self.predictor.device),
                        unheard=unheard_counts,
                    )
                )


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT or SIGTERM (shutdown order: `spin.py`); 0 on a clean stop, 1 on a failed start."""
    return run_until_signal(OccupancyNode, "occupancy_node", args)


if __name__ == "__main__":
    sys.exit(main())
