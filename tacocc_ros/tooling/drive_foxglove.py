"""`tacocc drive` and Foxglove: the run's `.mcap`, and a Foxglove client that loads the node's live bridge.

- `GridRecorder` keeps the node's output clouds (`/occupancy/cloud`) as they arrive, at most one per
  `period_s` of LiDAR time (the clouds of the demo grid are a few kB; the conversion to grids waits until
  the run is over, so recording costs the drive almost nothing while it measures).
- `write_drive_mcap` writes them after the run, each with the frame the driver published (the sweep, the six
  JPEGs, the rig's TF), to one `.mcap` with the channels of the node's live view (tacocc_core/viz/
  foxglove_messages.py); the fixture frame has no ground truth, so the file has no ground-truth channel.
- `LiveClient` subscribes to every channel of the node's Foxglove server during the run, as the Foxglove
  app would, and reports the messages and bytes it received per topic: a served bridge costs the node
  what it costs with a viewer attached, which is what `tacocc drive --foxglove-client` measures.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import numpy as np
from sensor_msgs.msg import PointCloud2

from tacocc_core.geometry import GridSpec
from tacocc_core.viz.foxglove_messages import FoxgloveFrame, rig_transforms
from tacocc_core.viz.foxglove_recording import write_foxglove_mcap
from tacocc_ros.messages.stamps import stamp_to_ns
from tacocc_ros.tooling.drive_source import DriveFrame
from tacocc_ros.tooling.foxglove_client import FoxgloveClient
from tacocc_ros.tooling.replay_recorder import cloud_to_grid


class GridRecorder:
    """The node's output clouds by LiDAR stamp, one per `period_s` at most (thread safe; `add` is cheap)."""

    def __init__(self, period_s: float = 0.5) -> None:
        if not period_s >= 0:
            raise ValueError(f"GridRecorder.period_s must be >= 0, got {period_s}")
        self.period_ns = round(period_s * 1e9)
        self.clouds: dict[int, PointCloud2] = {}
        self._last_ns: int | None = None
        self._lock = threading.Lock()

    def add(self, msg: PointCloud2) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            if self._last_ns is not None and 0 <= stamp - self._last_ns < self.period_ns:
                return
            self._last_ns = stamp
            self.clouds[stamp] = msg


def drive_frames(frame: DriveFrame, recorder: GridRecorder, grid: GridSpec) -> Iterator[FoxgloveFrame]:
    """One FoxgloveFrame per recorded grid, in stamp order, with the published frame's sweep, JPEGs and rig."""
    points = np.stack([frame.points[c] for c in ("x", "y", "z", "intensity")], axis=1).astype(np.float32)
    images = {camera: (jpeg, "jpeg") for camera, jpeg in frame.jpegs.items()}
    rig = frame.calibration
    cam2lidar = {c: rig.cameras[c].cam2lidar for c in frame.cameras if c in rig.cameras}
    transforms = rig_transforms(frame.lidar_frame, cam2lidar, frame.ego2global @ rig.lidar2ego)
    for stamp in sorted(recorder.clouds):
        labels = cloud_to_grid(recorder.clouds[stamp], grid)
        yield FoxgloveFrame(stamp, frame.lidar_frame, labels, None, points, images, transforms)


def write_drive_mcap(
    path: str | os.PathLike[str], frame: DriveFrame, recorder: GridRecorder, grid: GridSpec, metadata: dict
) -> dict:
    """Write the recorded grids with their frame to `path` (atomically); what the report says of the file."""
    written, messages = write_foxglove_mcap(
        path, drive_frames(frame, recorder, grid), grid, frame.cameras, ground_truth=False, metadata=metadata
    )
    return {"path": str(written), "grids": len(recorder.clouds), "messages": messages}


class LiveClient:
    """A Foxglove client on every channel of `ws://127.0.0.1:<port>` for the duration of a `with` block."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.client = FoxgloveClient(f"ws://{host}:{port}", topics=None, keep=False, connect_timeout_s=60.0)

    def __enter__(self) -> LiveClient:
        self.client.start()
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def report(self) -> dict:
        """{"url", "messages": {topic: n}, "megabytes": {topic: MB}} of what arrived."""
        return {
            "url": self.client.url,
            "messages": dict(sorted(self.client.counts.items())),
            "megabytes": {t: round(b / 1e6, 3) for t, b in sorted(self.client.bytes.items())},
        }
