"""The worker's half of the occupancy node: a synchronised set of messages -> the `Frame` the network takes.

- The images of a set are decoded here, on the worker, only for the sets it takes (the callbacks keep the
  compressed bytes), on `decode_threads` threads with libjpeg's reduced-size decode (images.py).
- Per camera: intrinsics from its latest CameraInfo, else from the extrinsics source (a calibration file);
  cam2lidar from the extrinsics source. A camera without an image, intrinsics or extrinsics is left out
  (`camera_valid` False, logged once); fewer usable cameras than needed refuses the set (counted).
- The previous sweeps are moved into the current LiDAR frame by the odometry poses (frame_builder.py).

No rclpy: what goes wrong is counted on `stats` and logged through the two functions it is given, so the
node decides how its log lines are throttled.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tacocc_core.frame import Frame
from tacocc_ros.messages.images import ImageDecodeError, decode_for_network
from tacocc_ros.node.extrinsics import Extrinsics
from tacocc_ros.node.frame_builder import PoseBuffer, SweepBuffer, camera_arrays
from tacocc_ros.node.stats import NodeStats
from tacocc_ros.node.sync import SyncedSet

Report = Callable[[str, str], None]  # (fixed reason, message)


@dataclass(frozen=True)
class LidarInput:
    """A converted sweep: (N, 4) float32 [x, y, z, intensity] in `frame_id`, arrival on the monotonic clock."""

    stamp_ns: int
    frame_id: str
    points: np.ndarray
    arrival_ns: int


class FrameAssembly:
    """Builds Frames from `SyncedSet`s whose `lidar` is a `LidarInput` and whose images are (stamp, msg).

    Args:
        cameras: camera names in the network's order.
        image_size: (height, width) the network takes (`cameras.image_size`).
        image_topics: camera name -> its image topic (named in errors).
        extrinsics: where cam2lidar, lidar2ego and fallback intrinsics come from.
        poses, sweeps: the odometry and sweep buffers the node's callbacks fill.
        stats: counters shown on /diagnostics.
        log_error: logs a refused image or set under a fixed reason.
        warn_once: logs a lasting condition (a camera left out, no odometry) once per key.
        decode_threads: JPEG decoding threads.
    """

    def __init__(
        self,
        cameras: tuple[str, ...],
        image_size: tuple[int, int],
        image_topics: dict[str, str],
        extrinsics: Extrinsics,
        poses: PoseBuffer,
        sweeps: SweepBuffer,
        stats: NodeStats,
        log_error: Report,
        warn_once: Report,
        decode_threads: int,
    ) -> None:
        self.cameras = cameras
        self.image_size = image_size
        self.image_topics = image_topics
        self.extrinsics = extrinsics
        self.poses = poses
        self.sweeps = sweeps
        self.stats = stats
        self.log_error = log_error
        self.warn_once = warn_once
        self.camera_info: dict[str, np.ndarray] = {}  # camera -> latest valid (3, 3) K, written by the node
        self.pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="tacocc-decode")  # also for benchmarks

    def build(self, synced: SyncedSet, needed_cameras: int, odom_wait_s: float) -> Frame | None:
        """Decode and assemble; None (counted) when fewer than `needed_cameras` cameras are usable."""
        lidar: LidarInput = synced.lidar
        decoded = self._decode(synced)
        intrinsics, extrinsics = {}, {}
        for name in decoded:
            k = self.camera_info.get(name)
            intrinsics_k = k if k is not None else self.extrinsics.cam2img(name)
            if intrinsics_k is not None:
                intrinsics[name] = intrinsics_k
            frame_id = synced.images[name][1].header.frame_id or name
            cam2lidar = self.extrinsics.cam2lidar(name, frame_id, lidar.frame_id)
            if cam2lidar is not None:
                extrinsics[name] = cam2lidar
        images, cam2img, cam2lidar, valid, missing = camera_arrays(
            self.cameras, self.image_size, decoded, intrinsics, extrinsics
        )
        for name, why in missing.items():
            if name in synced.images and name in decoded:
                self.warn_once(f"missing {name} {why}", f"camera {name} left out: {why}")
        if valid.sum() < max(needed_cameras, 1):
            self.stats.on_failed("too few cameras")
            self.log_error(
                "too few cameras",
                f"sweep {lidar.stamp_ns}: {int(valid.sum())} usable cameras, need {needed_cameras}; "
                f"left out: {missing}",
            )
            return None

        lidar2ego = self.extrinsics.lidar2ego(lidar.frame_id)
        if lidar2ego is None:
            self.warn_once("lidar2ego", f"no {lidar.frame_id} -> ego transform; assuming identity")
            lidar2ego = np.eye(4)

        def lidar2global(stamp_ns: int) -> np.ndarray | None:
            ego2global = self.poses.lookup(stamp_ns)
            return None if ego2global is None else ego2global @ lidar2ego

        self.poses.wait_for(lidar.stamp_ns, odom_wait_s)
        pose = lidar2global(lidar.stamp_ns)
        if pose is None:
            self.stats.on_event("no odometry")
            self.warn_once("no odometry", "no odometry near the LiDAR stamp: identity pose, previous sweeps not merged")
            pose = np.eye(4)
        points = self.sweeps.accumulate(lidar.stamp_ns, lidar.points, lidar2global)
        return Frame(
            images, cam2img, cam2lidar, points, pose, lidar.stamp_ns, camera_valid=valid, stream_id=lidar.frame_id
        )

    def _decode(self, synced: SyncedSet) -> dict:
        """Camera name -> ((H, W, 3) uint8 RGB, its ImageTransform); a corrupt image is counted and left out."""

        def decode(name: str):
            try:
                return name, decode_for_network(synced.images[name][1], self.image_size, source=self.image_topics[name])
            except ImageDecodeError as err:
                return name, err

        decoded = {}
        for name, result in self.pool.map(decode, list(synced.images)):
            if isinstance(result, ImageDecodeError):
                self.stats.on_failed(f"image {name}")
                self.log_error(f"image {name}", f"sweep {synced.lidar_stamp_ns}: {result}")
            else:
                decoded[name] = result
        return decoded

    def close(self) -> None:
        """Wait for the decoding in progress, then stop the decoding threads."""
        self.pool.shutdown(wait=True)
