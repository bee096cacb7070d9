"""The Foxglove frames of a replay: the node's grids and the bag's labels, sweeps, images and rig, by LiDAR stamp.

`write_replay_mcap` turns a `Recording` (what the node published for a bag) and the bag into one `.mcap`
(tacocc_core/viz/foxglove_recording.py): per received grid, the prediction, the ground truth where the bag
has it, the LiDAR sweep with that stamp, each camera's image nearest in time (its bytes as recorded) and
the TF frames (the world pose from the bag's odometry nearest in time, the cameras from the bag's
calibration file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from tacocc_core.bags.cloud_layout import cloud_xyz_points
from tacocc_core.bags.reading import BagReader, RawMessage
from tacocc_core.bags.topics import LIDAR_TOPIC, ODOM_TOPIC, camera_topics
from tacocc_core.geometry import GridSpec, pose_to_transform
from tacocc_core.recording import Recording
from tacocc_core.rig.calibration_file import FILE_NAME as CALIBRATION_FILE
from tacocc_core.rig.calibration_file import load_calibration
from tacocc_core.viz.foxglove_messages import FoxgloveFrame, image_format, rig_transforms
from tacocc_core.viz.foxglove_recording import write_foxglove_mcap


def _nearest(best: dict[int, tuple[int, RawMessage]], wanted: np.ndarray, msg: RawMessage) -> None:
    """Keep `msg` for each wanted stamp it is nearer to than the message kept so far."""
    for stamp in wanted.tolist():
        gap = abs(msg.stamp_ns - stamp)
        if stamp not in best or gap < best[stamp][0]:
            best[stamp] = (gap, msg)


def replay_frames(bag: str | os.PathLike[str], recording: Recording, cameras: Sequence[str]) -> Iterator[FoxgloveFrame]:
    """The frames of `recording` (one per received grid, in stamp order) with the bag's sensor data.

    A stamp without a LiDAR message in the bag gets no sweep; a camera without images gets no image.
    Raises BagError when the bag cannot be read or a message does not decode.
    """
    bag = Path(bag)
    stamps = np.asarray(sorted(recording.received_stamps), dtype=np.int64)
    rig = load_calibration(bag / CALIBRATION_FILE) if (bag / CALIBRATION_FILE).is_file() else None
    lidar_frame = rig.lidar_frame if rig is not None else "LIDAR_TOP"
    with BagReader(bag) as reader:
        image_topics = {camera_topics(c)[0]: c for c in cameras if camera_topics(c)[0] in reader.topics}
        topics = [t for t in (LIDAR_TOPIC, ODOM_TOPIC) if t in reader.topics] + list(image_topics)
        wanted = set(stamps.tolist())
        sweeps: dict[int, RawMessage] = {}
        odom: dict[int, tuple[int, RawMessage]] = {}
        images: dict[str, dict[int, tuple[int, RawMessage]]] = {c: {} for c in image_topics.values()}
        for msg in reader.messages(topics):
            if msg.topic == LIDAR_TOPIC:
                if msg.stamp_ns in wanted:
                    sweeps[msg.stamp_ns] = msg
            elif msg.topic == ODOM_TOPIC:
                _nearest(odom, stamps, msg)
            else:
                _nearest(images[image_topics[msg.topic]], stamps, msg)
        for stamp in stamps.tolist():
            points = None
            if stamp in sweeps:
                points = cloud_xyz_points(reader.decode(sweeps[stamp]), source=f"{bag}: {LIDAR_TOPIC} at {stamp} ns")
            frame_images = {}
            for camera, best in images.items():
                if stamp in best:
                    image = reader.decode(best[stamp][1])
                    frame_images[camera] = (bytes(image.data), image_format(image.format))
            lidar2world = None
            if stamp in odom and rig is not None:
                pose = reader.decode(odom[stamp][1]).pose.pose
                p, q = pose.position, pose.orientation
                lidar2world = (
                    pose_to_transform(np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z])) @ rig.lidar2ego
                )
            cam2lidar = {} if rig is None else {c: rig.cameras[c].cam2lidar for c in frame_images if c in rig.cameras}
            yield FoxgloveFrame(
                stamp_ns=stamp,
                lidar_frame=lidar_frame,
                labels=recording.preds[stamp],
                ground_truth=recording.gts.get(stamp),
                points=points,
                images=frame_images,
                transforms=rig_transforms(lidar_frame, cam2lidar, lidar2world),
            )


def write_replay_mcap(
    path: str | os.PathLike[str],
    recording: Recording,
    bag: str | os.PathLike[str],
    grid: GridSpec,
    cameras: Sequence[str],
    metadata: Mapping[str, str] | None = None,
) -> tuple[Path, int]:
    """`replay_frames` -> `path` (written atomically); (the path, the number of messages)."""
    frames = replay_frames(bag, recording, cameras)
    return write_foxglove_mcap(path, frames, grid, cameras, ground_truth=bool(recording.gts), metadata=metadata)
