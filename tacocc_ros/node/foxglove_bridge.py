"""The occupancy node's Foxglove WebSocket server: what the node publishes, live in the Foxglove app.

With the node parameter `foxglove_port` > 0 the node serves the channels of
`tacocc_core/viz/foxglove_messages.py` (the predicted grid as a VoxelGrid in the class colours, the LiDAR
sweep, the six cameras, the TF frames) with `foxglove-sdk`'s WebSocket server on `foxglove_host:foxglove_port`
(ws-protocol, subprotocol `foxglove.sdk.v1`); the Foxglove app connects to `ws://<host>:<port>`.

- The node's worker hands each published frame over with `submit` (references and one copy of the label
  grid, no encoding) and goes on; a thread of the bridge builds and logs the messages, newest frame first
  (a frame not yet taken is replaced by the next one: counted as `foxglove frames replaced` on /diagnostics).
- Nothing is built while no client subscribes to any channel; each message only while its channel has one.
- A port in use (or any failure to start) is logged as an error and counted (`failed foxglove bridge` on
  /diagnostics); the node runs on without the bridge. A client that disconnects is the server's business:
  the next frames go to the clients that remain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import foxglove
import numpy as np

from tacocc_core.frame import Frame
from tacocc_core.geometry import GridSpec
from tacocc_core.viz.foxglove_messages import FoxgloveChannels, FoxgloveFrame, image_format, rig_transforms
from tacocc_ros.node.frame_assembly import LidarInput
from tacocc_ros.node.stats import NodeStats
from tacocc_ros.node.sync import SyncedSet
from tacocc_ros.node.worker import Worker

SERVER_NAME = "tacocc_ros occupancy_node"
RAW_JPEG_QUALITY = 90


class FoxgloveBridgeError(RuntimeError):
    """The server did not start (port in use, bad host); the message names the address and the cause."""


@dataclass(frozen=True)
class _Handoff:
    """What the worker hands over: the frame's parts, converted to messages on the bridge thread."""

    stamp_ns: int
    lidar_frame: str
    labels: np.ndarray
    points: np.ndarray
    images: dict[str, Any]  # camera -> sensor_msgs CompressedImage, or (H, W, 3) uint8 RGB for a raw camera
    transforms: tuple


def _image_bytes(image: Any) -> tuple[bytes, str]:
    """A CompressedImage message -> its bytes and format; an RGB array (a raw camera) -> JPEG bytes."""
    if isinstance(image, np.ndarray):
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, RAW_JPEG_QUALITY]
        )
        if not ok:
            raise ValueError(f"a {image.shape} image did not encode as JPEG")
        return jpeg.tobytes(), "jpeg"
    return bytes(image.data), image_format(image.format)


class FoxgloveBridge:
    """A Foxglove WebSocket server with the node's channels and a thread that logs the frames.

    Args:
        grid: the node's output grid (LiDAR frame).
        cameras: the node's camera names.
        port: TCP port (> 0); host: the address to bind ("127.0.0.1": this machine only, "0.0.0.0": all).
        on_error: called as on_error(reason, message) when a frame fails (the node's throttled log).

    Raises:
        FoxgloveBridgeError: the server did not start (nothing keeps running then).
    """

    def __init__(
        self,
        grid: GridSpec,
        cameras: Sequence[str],
        port: int,
        host: str = "127.0.0.1",
        stats: NodeStats | None = None,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.cameras = tuple(cameras)
        self.stats = stats
        self._on_error = on_error
        self.context = foxglove.Context()
        try:
            self.server = foxglove.start_server(name=SERVER_NAME, host=host, port=port, context=self.context)
        except (RuntimeError, OSError, ValueError, OverflowError) as err:
            raise FoxgloveBridgeError(f"Foxglove server on {host}:{port} did not start: {err}") from None
        self.url = f"ws://{host}:{self.server.port}"
        self.channels = FoxgloveChannels(self.context, grid, self.cameras)
        self.worker: Worker[_Handoff] = Worker(self._log, self._failed, name="tacocc-foxglove").start()

    @property
    def port(self) -> int:
        return int(self.server.port)

    def submit(self, frame: Frame, labels: np.ndarray, synced: SyncedSet, lidar: LidarInput) -> None:
        """Hand a published frame to the bridge thread; returns at once, does nothing while no client listens.

        Args:
            frame: the network's input frame (its extrinsics, pose and, for raw cameras, its images).
            labels: (X, Y, Z) uint8 published grid (copied: the caller may reuse its buffer).
            synced: the synchronised set (the cameras' compressed messages, sent as they arrived).
            lidar: the sweep, (N, 4) float32 in `lidar.frame_id`.
        """
        if not self.channels.has_sinks():
            return
        images: dict[str, Any] = {}
        cam2lidar = {}
        valid = frame.camera_valid if frame.camera_valid is not None else np.ones(len(self.cameras), dtype=bool)
        for i, camera in enumerate(self.cameras):
            if not valid[i] or camera not in synced.images:
                continue
            cam2lidar[camera] = frame.cam2lidar[i]
            msg = synced.images[camera][1]
            images[camera] = msg if hasattr(msg, "format") else frame.images[i].copy()
        handoff = _Handoff(
            stamp_ns=lidar.stamp_ns,
            lidar_frame=lidar.frame_id,
            labels=np.array(labels, dtype=np.uint8, copy=True),
            points=lidar.points,
            images=images,
            transforms=rig_transforms(lidar.frame_id, cam2lidar, frame.lidar2global),
        )
        if self.worker.submit(handoff) and self.stats is not None:
            self.stats.on_event("foxglove frames replaced")

    def _log(self, h: _Handoff) -> None:
        images = {camera: _image_bytes(image) for camera, image in h.images.items()}
        frame = FoxgloveFrame(h.stamp_ns, h.lidar_frame, h.labels, None, h.points, images, h.transforms)
        self.channels.log(frame)

    def _failed(self, h: _Handoff, err: BaseException) -> None:
        if self.stats is not None:
            self.stats.on_failed("foxglove frame")
        if self._on_error is not None:
            self._on_error(
                "foxglove frame", f"sweep {h.stamp_ns}: Foxglove messages failed: {type(err).__name__}: {err}"
            )

    def close(self) -> None:
        """Stop the thread (the frame in progress finishes), close the channels and the server."""
        self.worker.stop()
        self.channels.close()
        self.server.stop()


def start_bridge(node: Any) -> FoxgloveBridge | None:
    """The bridge the node's `foxglove_port` / `foxglove_host` parameters ask for; None when off or failed.

    `node` is the OccupancyNode (its values, grid, cameras, stats, logger and throttled error log). A failure
    to start is logged and counted; the node goes on without the bridge.
    """
    port, host = int(node.values["foxglove_port"]), str(node.values["foxglove_host"])
    if port == 0:
        return None
    try:
        bridge = FoxgloveBridge(node.grid, node.cameras, port, host, node.stats, node._log_error)
    except FoxgloveBridgeError as err:
        node.stats.on_failed("foxglove bridge")
        node.get_logger().error(f"{err}; running without the Foxglove bridge")
        return None
    node.get_logger().info(f"Foxglove bridge: serving on {bridge.url} (open it in the Foxglove app)")
    return bridge
