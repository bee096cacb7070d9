"""Synchronised Frames (+ labels) straight from rosbag2 bags, assembled as the occupancy node assembles them.

Any recorded bag (.mcap or .db3) reads: the topic names are the occupancy node's parameters
(`SensorTopics`), images may be sensor_msgs/Image or CompressedImage, ego motion comes from the odometry
or, without one, from /tf; the rig comes from a calibration file or the bag's /tf_static + camera_info.

The node's pieces do the work, so a training sequence sees what the node would see on the same
messages: messages are deserialised into the rclpy classes (`rclpy.serialization.deserialize_message`),
sweeps and images meet in the node's `LidarSynchronizer`, images go through `decode_for_network`,
clouds through `cloud_to_points`, poses through `PoseBuffer`, previous sweeps through `SweepBuffer`,
camera arrays through `camera_arrays`, extrinsics from the rig (`bag_rig`). Only the timing differs: a
bag is read twice, first its odometry (or /tf), camera_info and labels (small), then its sweeps and
images, so every pose is known when a frame is built (the node waits for odometry instead).

Labels: the labels topic (`/occupancy/gt`) lists labelled voxel centres (x, y, z float32 + label uint8,
LiDAR frame) on the `label_grid` of the calibration file; voxels not listed are empty. A rig without a
label_grid (one derived from /tf_static) leaves the labels out. They are attached to the frame with the
same LiDAR stamp and resampled to the model grid with `resample_labels` when the grids differ.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from rclpy.serialization import deserialize_message

from tacocc_core.bags.ego_motion import ego_poses_from_tf, read_transforms
from tacocc_core.bags.messages import ODOMETRY
from tacocc_core.bags.reading import BagError, BagReader, RawMessage, image_topics, require_sensor_topics
from tacocc_core.bags.topics import SensorTopics
from tacocc_core.config import ModelConfig
from tacocc_core.data.label_resample import resample_labels
from tacocc_core.frame import Frame
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import EMPTY
from tacocc_core.rig.calibration_file import CalibrationError
from tacocc_core.rig.sources import bag_rig
from tacocc_ros.bags.player import message_class
from tacocc_ros.messages.images import ImageDecodeError, decode_for_network
from tacocc_ros.messages.pointcloud import PointCloudError, cloud_to_array, cloud_to_points
from tacocc_ros.messages.stamps import stamp_to_ns
from tacocc_ros.node.frame_builder import PoseBuffer, SweepBuffer, camera_arrays, pose_xyzw_to_transform
from tacocc_ros.node.sync import LidarSynchronizer, SyncConfig, SyncedSet

FrameT = TypeVar("FrameT")  # what a sequence is made of

__all__ = ["BagFrame", "bag_frames", "deserialize", "labels_from_cloud", "sequences"]


@dataclass(frozen=True)
class BagFrame:
    """One synchronised frame of a bag; `labels` (X, Y, Z) uint8 on the model grid, or None when unlabelled."""

    frame: Frame
    labels: np.ndarray | None
    bag: Path


def deserialize(reader: BagReader, msg: RawMessage):
    """A stored message -> its installed rclpy message; BagError naming bag, topic and stamp otherwise."""
    cls = message_class(msg.msgtype)
    if cls is None:
        raise BagError(f"{reader.path}: topic {msg.topic} has type {msg.msgtype}, which is not installed here")
    try:
        return deserialize_message(msg.data, cls)
    except Exception as err:  # rclpy raises assorted errors on bad CDR; all mean "malformed"
        raise BagError(
            f"{reader.path}: topic {msg.topic}: malformed {msg.msgtype} at {msg.stamp_ns} ns ({err})"
        ) from None


def labels_from_cloud(msg, grid: GridSpec, source: str) -> np.ndarray:
    """/occupancy/gt PointCloud2 (x, y, z, label) -> (grid.shape) uint8 labels, EMPTY where not listed."""
    cloud = cloud_to_array(msg, source=source)
    names = cloud.dtype.names or ()
    if not {"x", "y", "z", "label"} <= set(names):
        raise PointCloudError(f"{source}: a label cloud needs fields x, y, z, label; it has {list(names)}")
    centres = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1).astype(np.float64)
    idx, inside = grid.point_to_index(centres)
    if not inside.all():
        bad = centres[~inside][0].tolist()
        raise PointCloudError(f"{source}: {int((~inside).sum())} label voxels outside the label grid, e.g. {bad}")
    out = np.full(grid.shape, EMPTY, dtype=np.uint8)
    out[idx[:, 0], idx[:, 1], idx[:, 2]] = cloud["label"]
    return out


def bag_frames(
    path: str | os.PathLike[str],
    config: ModelConfig,
    sync: SyncConfig | None = None,
    topics: SensorTopics | None = None,
    calibration: str | os.PathLike[str] = "",
    log: Callable[[str], object] | None = None,
) -> Iterator[BagFrame]:
    """The synchronised frames of one bag, in LiDAR stamp order.

    Args:
        path: rosbag2 bag (folder, .mcap or .db3).
        config: model config (cameras, image size, sweeps, grid).
        sync: matching rule; default the node's defaults for `config.cameras.names`.
        topics: topic names (the nodes' parameters); default the converter's names.
        calibration: calibration file; "" = the bag's calibration.yaml if there, else the rig derived
            from its /tf_static and camera_info (`tacocc_core.rig.sources.bag_rig`).
        log: receives one line saying where the rig came from, and notes (an old calibration layout,
            labels left out); default: nothing is logged.

    Ego motion comes from `topics.odom` when it has messages, else from the rig's ego frame in /tf.

    Raises:
        BagError: unreadable bag, a missing camera / camera_info / LiDAR topic or no ego motion (named
            with the parameter to set), a malformed message.
        CalibrationError: a missing or invalid calibration file, or a rig the bag does not give.
    """
    path = Path(path)
    cameras = tuple(config.cameras.names)
    sync = sync or SyncConfig(cameras=cameras)
    topics = topics or SensorTopics()
    say = log or (lambda _line: None)
    with BagReader(path) as reader:
        require_sensor_topics(reader, cameras, topics)
    try:
        rig, source = bag_rig(path, cameras, topics, calibration, say)
    except CalibrationError as err:
        raise CalibrationError(f"{path}: {err}" if str(path) not in str(err) else str(err)) from None
    say(source)
    label_grid = rig.label_grid
    size = config.cameras.image_size
    with BagReader(path) as reader:
        poses = PoseBuffer(max_poses=10**7, reset_after_ns=2**62)
        intrinsics: dict[str, np.ndarray] = {}
        labels: dict[int, np.ndarray] = {}
        info_topics = {topics.info(c): c for c in cameras}
        odom = _ego_motion_source(reader, topics, rig.ego_frame, poses)
        has_labels = topics.labels in reader.topics and reader.topics[topics.labels].count > 0
        if has_labels and label_grid is None:
            say(f"{path}: {topics.labels} left out: the rig has no label_grid to place its voxels on")
        first = [*info_topics, *([odom] if odom else []), *([topics.labels] if has_labels and label_grid else [])]
        for raw in reader.messages(first):
            msg = deserialize(reader, raw)
            if raw.topic in info_topics:
                intrinsics[info_topics[raw.topic]] = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
            elif raw.topic == odom:
                p, q = msg.pose.pose.position, msg.pose.pose.orientation
                poses.add(stamp_to_ns(msg.header.stamp), pose_xyzw_to_transform((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))
            elif label_grid is not None:
                where = f"{path}: {topics.labels} at {raw.stamp_ns} ns"
                labels[stamp_to_ns(msg.header.stamp)] = resample_labels(
                    labels_from_cloud(msg, label_grid, where), label_grid, config.grid.spec()
                )
        topic_of = image_topics(reader.topics, cameras, topics)
        camera_of = {topic: c for c, topic in topic_of.items()}
        synchronizer = LidarSynchronizer(sync)
        sweeps = SweepBuffer(config.lidar.sweeps, keep=max(32, config.lidar.sweeps + 1))
        lidar2ego = rig.lidar2ego
        extrinsics = {name: rig.cameras[name].cam2lidar for name in cameras if name in rig.cameras}
        fallback_k = {name: rig.cameras[name].cam2img for name in cameras if name in rig.cameras}
        motion = odom or f"{topics.tf} ({rig.ego_frame})"

        def lidar2global(stamp_ns: int) -> np.ndarray | None:
            ego2global = poses.lookup(stamp_ns)
            return None if ego2global is None else ego2global @ lidar2ego

        def build(synced: SyncedSet) -> BagFrame:
            stamp, points, frame_id = synced.lidar
            decoded = {}
            for name, (_, image) in synced.images.items():
                try:
                    decoded[name] = decode_for_network(image, size, source=f"{path}: {topic_of[name]}")
                except ImageDecodeError as err:
                    raise BagError(str(err)) from None
            k = {name: value for name in decoded if (value := intrinsics.get(name, fallback_k.get(name))) is not None}
            images, cam2img, cam2lidar, valid, missing = camera_arrays(cameras, size, decoded, k, extrinsics)
            pose = lidar2global(stamp)
            if pose is None:
                raise BagError(f"{path}: no {motion} pose near the LiDAR stamp {stamp} ns")
            merged = sweeps.accumulate(stamp, points, lidar2global)
            frame = Frame(images, cam2img, cam2lidar, merged, pose, stamp, camera_valid=valid, stream_id=frame_id)
            return BagFrame(frame, labels.get(stamp), path)

        for raw in reader.messages([topics.lidar, *camera_of]):
            msg = deserialize(reader, raw)
            stamp = stamp_to_ns(msg.header.stamp)
            if raw.topic == topics.lidar:
                try:
                    points = cloud_to_points(msg, source=f"{path}: {topics.lidar}")
                except PointCloudError as err:
                    raise BagError(str(err)) from None
                events = synchronizer.add_lidar(stamp, (stamp, points, msg.header.frame_id))
                sweeps.add(stamp, points)
            else:
                events = synchronizer.add_image(camera_of[raw.topic], stamp, msg)
            for event in events:
                if isinstance(event, SyncedSet):
                    yield build(event)


def _ego_motion_source(reader: BagReader, topics: SensorTopics, ego_frame: str, poses: PoseBuffer) -> str | None:
    """The odometry topic when it has messages (None: `poses` filled from /tf instead); BagError if neither."""
    odom = reader.topics.get(topics.odom)
    if odom is not None and odom.count > 0:
        if odom.msgtype != ODOMETRY:
            raise BagError(
                f"{reader.path}: topic {topics.odom} has type {odom.msgtype}, expected {ODOMETRY}; set odom_topic"
            )
        return topics.odom
    found = []
    if topics.tf in reader.topics:
        static = []
        if topics.tf_static in reader.topics:
            static = [s.edge for s in read_transforms(reader, topics.tf_static)]
        found = ego_poses_from_tf(read_transforms(reader, topics.tf), static, ego_frame)
    if not found:
        raise BagError(
            f"neither odom_topic {topics.odom} nor {topics.tf} with {ego_frame} in {reader.path}: no ego motion; "
            f"set odom_topic, or ego_frame to the vehicle frame whose motion {topics.tf} carries"
        )
    last = None
    for stamp, ego2global in found:
        if stamp != last:
            poses.add(stamp, ego2global)
        last = stamp
    return None


def sequences(frames: Sequence[FrameT], window: int) -> list[list[FrameT]]:
    """Consecutive, non-overlapping `window`-frame sequences of frames of one bag (a short tail is left out)."""
    if window < 1:
        raise ValueError(f"sequences: window must be >= 1, got {window}")
    return [list(frames[i : i + window]) for i in range(0, len(frames) - window + 1, window)]
