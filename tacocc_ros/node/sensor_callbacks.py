"""The occupancy node's subscription callbacks and throttled logging (a mixin of `OccupancyNode`).

The callbacks run on the executor thread and never wait for the network: a cloud is converted (and its
intensities scaled), an image keeps its compressed bytes after a header check, CameraInfo and odometry
are stored, and a complete set goes to the worker. Each is `guarded`: input is dropped unless the node
is active, and an unexpected exception is logged and counted instead of ending the spin.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING, Any

from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, PointCloud2

from tacocc_ros.messages.camera_info import CameraInfoError, camera_intrinsics
from tacocc_ros.messages.images import ImageDecodeError, check_image
from tacocc_ros.messages.pointcloud import PointCloudError, cloud_to_points
from tacocc_ros.messages.stamps import stamp_to_ns
from tacocc_ros.node.frame_assembly import LidarInput
from tacocc_ros.node.frame_builder import pose_xyzw_to_transform
from tacocc_ros.node.lidar_intensity import intensity_problem, scale_intensity
from tacocc_ros.node.sync import DroppedSet, SyncedSet, TimeReset


def guarded(callback):
    """A subscription callback that drops input unless the node is active.

    An unexpected exception is logged and counted instead of ending the spin.
    """

    @functools.wraps(callback)
    def run(self, *args):
        if not self.active:
            return
        try:
            callback(self, *args)
        except Exception as err:  # noqa: BLE001 - one bad message must not take the node down
            reason = f"callback {callback.__name__}"
            self.stats.on_failed(reason)
            self._log_error(reason, f"{callback.__name__}: {type(err).__name__}: {err}")

    return run


class SensorCallbacks:
    """Callbacks of the node's inputs; the node provides the attributes used here (stats, sync, worker, ...)."""

    active: bool
    values: dict[str, Any]
    stats: Any
    sync: Any
    worker: Any
    frames: Any
    poses: Any
    sweeps: Any
    log_throttle: Any
    _sync_lock: threading.Lock
    _reset_requested: threading.Event
    _warned: set[str]

    if TYPE_CHECKING:

        def get_logger(self) -> Any: ...  # rclpy Node's

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
        self.stats.on_input(cam.info_topic, time.monotonic_ns())
        try:
            k = camera_intrinsics(msg, source=cam.info_topic)
        except CameraInfoError as err:
            reason = f"bad CameraInfo {cam.name}"
            self.stats.on_failed(reason)
            self._log_error(reason, f"{err} (kept the previous K)")
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
        scale = self.values["lidar_intensity_scale"]
        scale_intensity(points, scale)
        if "intensity scale" not in self._warned and (problem := intensity_problem(points[:, 3], scale)):
            self.stats.on_event("intensity off the training scale")
            self._warn_once("intensity scale", f"{topic}: {problem}")
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
