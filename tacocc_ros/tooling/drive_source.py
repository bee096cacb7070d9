"""The real frame a load driver publishes over and over: six JPEGs, their intrinsics, one LiDAR sweep, a pose.

Two sources:
- `frame_from_fixture(folder)`: the nuScenes keyframe folder of the fixtures (`calib.json`, six JPEGs, a
  `.pcd.bin` sweep of (N, 5) float32 x, y, z, intensity, ring). Its rig transforms (`cam2ego`, `lidar2ego`)
  are written to a calibration YAML for the node (`cam2lidar = inv(lidar2ego) @ cam2ego`), never the
  sample's `lidar2cam`, which carries the ego motion between the sensor stamps.
- `frame_from_bag(bag)`: a bag written by `tacocc convert-nuscenes`: the first sweep, the first JPEG and
  CameraInfo of each camera, the first odometry pose; its `calibration.yaml` goes to the node unchanged.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from tacocc_core.bags.reading import BagReader, image_topics
from tacocc_core.bags.topics import LIDAR_TOPIC, ODOM_TOPIC, camera_topics
from tacocc_core.geometry import invert_transform, pose_to_transform
from tacocc_ros.messages.images import JPEG_MAGIC
from tacocc_ros.messages.pointcloud import cloud_to_points
from tacocc_ros.node.calibration import CameraCalibration, RigCalibration, save_calibration

REPO_ROOT = Path(__file__).resolve().parents[2]
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])


class DriveSourceError(ValueError):
    """A fixture folder or bag that does not hold a frame the driver can publish (names file and what is missing)."""


def default_fixture() -> Path:
    """`$TACOCC_FIXTURES/nuscenes_frame`, else `../shared/fixtures/nuscenes_frame` beside this checkout."""
    root = Path(os.environ.get("TACOCC_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))
    return root / "nuscenes_frame"


@dataclass(frozen=True)
class DriveFrame:
    """One frame to publish.

    jpegs: camera -> JPEG bytes (full size); image_sizes: camera -> (height, width);
    intrinsics: camera -> (3, 3) float64 K of the full-size image; points: (N,) POINT_DTYPE, LiDAR frame;
    lidar_frame: the LiDAR frame id; ego2global: (4, 4) float64; calibration: the rig (cam2lidar, lidar2ego).
    """

    jpegs: dict[str, bytes]
    image_sizes: dict[str, tuple[int, int]]
    intrinsics: dict[str, np.ndarray]
    points: np.ndarray
    lidar_frame: str
    ego2global: np.ndarray
    calibration: RigCalibration
    source: str

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.jpegs)

    def write_calibration(self, path: str | os.PathLike[str]) -> Path:
        """The node's calibration YAML for this rig (written atomically by `save_calibration`)."""
        save_calibration(path, self.calibration)
        return Path(path)


def _jpeg_size(data: bytes, where: str) -> tuple[int, int]:
    """(height, width) of a JPEG from its header."""
    if not data.startswith(JPEG_MAGIC):
        raise DriveSourceError(f"{where}: not a JPEG")
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            width, height = im.size
    except OSError as err:
        raise DriveSourceError(f"{where}: unreadable JPEG ({err})") from None
    return height, width


def frame_from_fixture(folder: str | os.PathLike[str]) -> DriveFrame:
    """The fixture keyframe in `folder` (see the module docstring)."""
    folder = Path(folder)
    calib_path = folder / "calib.json"
    if not calib_path.is_file():
        raise DriveSourceError(f"{calib_path}: not found (a nuScenes fixture folder holds calib.json, JPEGs, .pcd.bin)")
    calib = json.loads(calib_path.read_text())
    try:
        lidar2ego = np.asarray(calib["lidar"]["lidar2ego"], dtype=np.float64)
        raw = np.fromfile(folder / calib["lidar"]["file"], dtype=np.float32)
        cams = calib["cameras"]
        ego2global = np.asarray(calib["ego2global"], dtype=np.float64)
    except (KeyError, OSError) as err:
        raise DriveSourceError(f"{calib_path}: {type(err).__name__}: {err}") from None
    if raw.size % 5:
        raise DriveSourceError(f"{folder / calib['lidar']['file']}: {raw.size} floats, not (N, 5)")
    raw = raw.reshape(-1, 5)
    points = np.zeros(len(raw), dtype=POINT_DTYPE)
    for i, name in enumerate(POINT_DTYPE.names or ()):
        points[name] = raw[:, i]
    jpegs, sizes, intrinsics, cameras = {}, {}, {}, {}
    lidar2ego_inv = invert_transform(lidar2ego)
    for name, cam in cams.items():
        path = folder / cam["file"]
        jpegs[name] = path.read_bytes()
        sizes[name] = _jpeg_size(jpegs[name], str(path))
        intrinsics[name] = np.asarray(cam["cam2img"], dtype=np.float64)
        cameras[name] = CameraCalibration(lidar2ego_inv @ np.asarray(cam["cam2ego"]), intrinsics[name], name)
    rig = RigCalibration("LIDAR_TOP", cameras, lidar2ego)
    return DriveFrame(jpegs, sizes, intrinsics, points, "LIDAR_TOP", ego2global, rig, str(folder))


def frame_from_bag(bag: str | os.PathLike[str], cameras: tuple[str, ...]) -> tuple[DriveFrame, Path]:
    """The first complete frame of a converted bag, and the bag's calibration.yaml (see the module docstring)."""
    from rclpy.serialization import deserialize_message

    from tacocc_ros.bags.player import message_class
    from tacocc_ros.node.calibration import load_calibration

    bag = Path(bag)
    calibration_path = (bag if bag.is_dir() else bag.parent) / "calibration.yaml"
    if not calibration_path.is_file():
        raise DriveSourceError(f"{calibration_path}: not found (written by tacocc convert-nuscenes beside the bag)")
    rig = load_calibration(calibration_path)
    info_topic = {camera_topics(c)[1]: c for c in cameras}
    jpegs, sizes, intrinsics = {}, {}, {}
    cloud = odom = None
    with BagReader(bag) as reader:
        image_topic = {topic: c for c, topic in image_topics(reader.topics, cameras).items()}
        wanted = [t for t in (*image_topic, *info_topic, LIDAR_TOPIC, ODOM_TOPIC) if t in reader.topics]
        for raw in reader.messages(wanted):
            cls = message_class(raw.msgtype)
            if cls is None:
                raise DriveSourceError(f"{bag}: {raw.topic}: message type {raw.msgtype} is not installed here")
            msg: Any = deserialize_message(raw.data, cls)
            if raw.topic in image_topic and image_topic[raw.topic] not in jpegs:
                data = bytes(msg.data)
                jpegs[image_topic[raw.topic]] = data
                sizes[image_topic[raw.topic]] = _jpeg_size(data, f"{bag}: {raw.topic}")
            elif raw.topic in info_topic and info_topic[raw.topic] not in intrinsics:
                intrinsics[info_topic[raw.topic]] = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
            elif raw.topic == LIDAR_TOPIC and cloud is None:
                cloud = msg
            elif raw.topic == ODOM_TOPIC and odom is None:
                odom = msg
            if len(jpegs) == len(cameras) and len(intrinsics) == len(cameras) and cloud is not None and odom:
                break
    missing = [c for c in cameras if c not in jpegs or c not in intrinsics]
    if missing or cloud is None:
        what = ([f"JPEG/CameraInfo of {', '.join(missing)}"] if missing else []) + (
            [LIDAR_TOPIC] if cloud is None else []
        )
        raise DriveSourceError(f"{bag}: no {' and '.join(what)}")
    xyzi = cloud_to_points(cloud, source=f"{bag}: {LIDAR_TOPIC}")
    points = np.zeros(len(xyzi), dtype=POINT_DTYPE)
    for i, name in enumerate(("x", "y", "z", "intensity")):
        points[name] = xyzi[:, i]
    ego2global = np.eye(4)
    if odom is not None:
        p, q = odom.pose.pose.position, odom.pose.pose.orientation
        ego2global = pose_to_transform(np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z]))
    frame = DriveFrame(
        {c: jpegs[c] for c in cameras}, sizes, intrinsics, points, cloud.header.frame_id or rig.lidar_frame,
        ego2global, rig, str(bag),
    )  # fmt: skip
    return frame, calibration_path
