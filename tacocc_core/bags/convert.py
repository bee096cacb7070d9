"""nuScenes scenes -> rosbag2 bags (one per scene), with the `rosbags` library; no ROS install needed.

Each bag `<out>/<scene name>/` holds, stamped with the nuScenes timestamps (microseconds -> ns; the bag's
receive time equals the header stamp):

    /tf_static                      tf2_msgs/TFMessage, once at the start: base_link -> LIDAR_TOP, -> CAM_*
    /CAM_*/image_rect/compressed    sensor_msgs/CompressedImage, the dataset's JPEG bytes unchanged
    /CAM_*/camera_info              sensor_msgs/CameraInfo with every image (K from calibrated_sensor)
    /LIDAR_TOP                      sensor_msgs/PointCloud2 x, y, z, intensity, ring float32, every sweep
    /odom                           nav_msgs/Odometry odom -> base_link, the ego pose of every sample_data
    /occupancy/gt                   sensor_msgs/PointCloud2 x, y, z float32 + label uint8 at keyframes

and `calibration.yaml` (schema in `tacocc_core/rig/calibration_file.py`). Camera and LiDAR records are
every sample_data of the channel's chain in the scene (keyframes and sweeps). The odometry twist is the
central difference of neighbouring ego poses, in base_link. /occupancy/gt lists the non-empty voxels of
the keyframe's labels on the SurroundOcc grid (LiDAR frame; 255 = ignore), read through `NuScenesReader`
with its label options. A bag is written into a hidden temporary folder and renamed into place when complete.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from nuscenes.nuscenes import NuScenes
from PIL import Image
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from tacocc_core.bags import messages as m
from tacocc_core.bags.cloud_layout import LIDAR_DTYPE, label_points
from tacocc_core.bags.reading import BagError
from tacocc_core.bags.topics import LABELS_TOPIC, LIDAR_TOPIC, ODOM_TOPIC, TF_STATIC_TOPIC, camera_topics
from tacocc_core.config import NUSCENES_CAMERAS, GridConfig, ModelConfig
from tacocc_core.data.nuscenes_reader import DataError, NuScenesReader, ReaderOptions, read_pcd_bin_check
from tacocc_core.geometry import invert_transform, pose_to_transform
from tacocc_core.labels import EMPTY, SURROUNDOCC_GRID
from tacocc_core.rig.calibration_file import FILE_NAME, CameraCalibration, RigCalibration, save_calibration

log = logging.getLogger(__name__)

BAG_VERSION: Literal[8, 9] = 8  # rosbag2 metadata version 8 (Jazzy's); rosbags writes 8 or 9
LIDAR_CHANNEL = "LIDAR_TOP"
IMAGE_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}
_NEVER = QosTime(sec=0, nsec=0)  # 0 = the RMW default (no deadline, infinite lifespan)


def qos(durability: QosDurability, depth: int) -> Qos:
    """A reliable keep-last profile with the given durability, as recorded in the bag's metadata."""
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE,
        durability,
        _NEVER,
        _NEVER,
        QosLiveliness.AUTOMATIC,
        _NEVER,
        False,
    )


SENSOR_QOS = qos(QosDurability.VOLATILE, 10)  # what a camera or LiDAR driver offers by default
LATCHED_QOS = qos(QosDurability.TRANSIENT_LOCAL, 1)  # tf_static and camera_info: late subscribers get the last


@dataclass(frozen=True)
class ConvertOptions:
    """How scenes become bags.

    Args:
        storage: "mcap" or "sqlite3" (the two rosbag2 storage plugins).
        labels: label source as `ReaderOptions.labels` ("surroundocc", "occ3d" or "none").
        label_root: label folder as `ReaderOptions.label_root` (default under the dataroot).
        base_frame: the vehicle frame (child of /odom, parent in /tf_static).
        odom_frame: the fixed frame of /odom (nuScenes' global frame).
        progress: show a tqdm bar over keyframe samples on stderr.
    """

    storage: Literal["mcap", "sqlite3"] = "mcap"
    labels: Literal["surroundocc", "occ3d", "none"] = "surroundocc"
    label_root: str | None = None
    base_frame: str = "base_link"
    odom_frame: str = "odom"
    progress: bool = True

    def validate(self) -> None:
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"convert: storage must be 'mcap' or 'sqlite3', got {self.storage!r}")
        if self.labels not in ("surroundocc", "occ3d", "none"):
            raise ValueError(f"convert: labels must be 'surroundocc', 'occ3d' or 'none', got {self.labels!r}")


@dataclass(frozen=True)
class _Event:
    """One thing to write, in time order: a sample_data record or an ego pose."""

    stamp_us: int
    rank: int  # tie-break at equal stamps: odom, LiDAR, cameras in rig order
    channel: str
    record: dict


def scene_channels(nusc: NuScenes, scene: dict) -> list[str]:
    """Camera channels of the scene's first sample: nuScenes rig order first, any others sorted."""
    first = nusc.get("sample", scene["first_sample_token"])
    cams = [c for c in first["data"] if _modality(nusc, first["data"][c]) == "camera"]
    return [c for c in NUSCENES_CAMERAS if c in cams] + sorted(c for c in cams if c not in NUSCENES_CAMERAS)


def _sd(nusc: NuScenes, token: str) -> dict:
    return nusc.get("sample_data", token)


def _modality(nusc: NuScenes, sd_token: str) -> str:
    cs = nusc.get("calibrated_sensor", _sd(nusc, sd_token)["calibrated_sensor_token"])
    return nusc.get("sensor", cs["sensor_token"])["modality"]


def channel_records(nusc: NuScenes, first_sd_token: str) -> list[dict]:
    """Every sample_data of one channel's chain through `first_sd_token` (sweeps and keyframes), in time order."""
    sd = _sd(nusc, first_sd_token)
    while sd["prev"]:
        sd = _sd(nusc, sd["prev"])
    chain = [sd]
    while chain[-1]["next"]:
        chain.append(_sd(nusc, chain[-1]["next"]))
    return chain


def sensor2ego(nusc: NuScenes, sd: dict) -> np.ndarray:
    """(4, 4) sensor -> ego of one sample_data's calibrated_sensor."""
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return pose_to_transform(cs["translation"], cs["rotation"])


def ego_twists(stamps_us: np.ndarray, ego2global: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference twist of a pose sequence, in the ego frame.

    Args:
        stamps_us: (N,) strictly increasing microseconds.
        ego2global: (N, 4, 4) poses.

    Returns:
        linear (N, 3) m/s and angular (N, 3) rad/s in the ego frame at each stamp; zeros when N < 2.
    """
    n = len(stamps_us)
    linear, angular = np.zeros((n, 3)), np.zeros((n, 3))
    for i in range(n if n > 1 else 0):
        a, b = max(i - 1, 0), min(i + 1, n - 1)
        dt = (stamps_us[b] - stamps_us[a]) / 1e6
        rot_i = ego2global[i, :3, :3]
        linear[i] = rot_i.T @ (ego2global[b, :3, 3] - ego2global[a, :3, 3]) / dt
        relative = ego2global[a, :3, :3].T @ ego2global[b, :3, :3]  # rotation from a to b, in frame a
        angular[i] = rot_i.T @ ego2global[a, :3, :3] @ Rotation.from_matrix(relative).as_rotvec() / dt
    return linear, angular


def image_size(data: bytes, path: Path) -> tuple[int, int]:
    """(height, width) from an encoded image's header; DataError naming the file when it is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    return height, width


class SceneConverter:
    """Writes the bags of one opened dataset; `convert(scene_name, out_dir)` does one scene."""

    def __init__(self, nusc: NuScenes, options: ConvertOptions) -> None:
        options.validate()
        self.nusc = nusc
        self.options = options
        # The default ModelConfig grid is the SurroundOcc grid, so the reader returns labels on it unchanged.
        config = ModelConfig(grid=GridConfig())
        if config.grid.spec() != SURROUNDOCC_GRID:
            raise AssertionError("the default grid must be the SurroundOcc grid")
        self.label_reader = NuScenesReader(
            nusc, config, ReaderOptions(labels=options.labels, label_root=options.label_root)
        )

    def scene(self, name: str) -> dict:
        for scene in self.nusc.scene:
            if scene["name"] == name:
                return scene
        known = [s["name"] for s in self.nusc.scene]
        raise DataError(f"no scene named {name!r} in {self.nusc.dataroot}; scenes: {', '.join(known[:20])}")

    def calibration(self, scene: dict, cameras: list[str]) -> RigCalibration:
        """The static rig of the scene from the first keyframe's calibrated_sensor records."""
        first = self.nusc.get("sample", scene["first_sample_token"])
        lidar_sd = _sd(self.nusc, first["data"][LIDAR_CHANNEL])
        lidar2base = sensor2ego(self.nusc, lidar_sd)
        base2lidar = invert_transform(lidar2base)
        cams = {}
        for name in cameras:
            sd = _sd(self.nusc, first["data"][name])
            cs = self.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            path = Path(self.nusc.dataroot) / sd["filename"]
            cams[name] = CameraCalibration(
                cam2lidar=base2lidar @ sensor2ego(self.nusc, sd),
                cam2img=np.asarray(cs["camera_intrinsic"], dtype=np.float64),
                frame_id=name,
                image_size=image_size(_read(path), path),
            )
        return RigCalibration(
            lidar_frame=LIDAR_CHANNEL,
            cameras=cams,
            lidar2ego=lidar2base,
            ego_frame=self.options.base_frame,
            label_grid=None if self.options.labels == "none" else SURROUNDOCC_GRID,
        )

    def events(self, scene: dict, cameras: list[str]) -> list[_Event]:
        """All sample_data of the LiDAR and the cameras, plus one ego pose per distinct stamp, in time order."""
        first = self.nusc.get("sample", scene["first_sample_token"])
        events: list[_Event] = []
        poses: dict[int, dict] = {}
        for rank, channel in enumerate([LIDAR_CHANNEL, *cameras], start=1):
            if channel not in first["data"]:
                raise DataError(f"scene {scene['name']}: first sample {first['token']} has no {channel} sample_data")
            for sd in channel_records(self.nusc, first["data"][channel]):
                events.append(_Event(int(sd["timestamp"]), rank, channel, sd))
                pose = self.nusc.get("ego_pose", sd["ego_pose_token"])
                poses.setdefault(int(pose["timestamp"]), pose)
        stamps = np.array(sorted(poses), dtype=np.int64)
        ego2global = np.stack([pose_to_transform(poses[s]["translation"], poses[s]["rotation"]) for s in stamps])
        linear, angular = ego_twists(stamps, ego2global)
        for i, stamp in enumerate(stamps):
            events.append(
                _Event(int(stamp), 0, "odom", {"pose": ego2global[i], "linear": linear[i], "angular": angular[i]})
            )
        return sorted(events, key=lambda e: (e.stamp_us, e.rank))

    def convert(self, name: str, out_dir: Path, bar: tqdm | None = None) -> Path:
        """Write scene `name` to `out_dir/name` (which must not exist) and return that path."""
        scene = self.scene(name)
        final = out_dir / name
        if final.exists():
            raise FileExistsError(f"{final}: bag already exists; choose a new --out or remove it")
        cameras = scene_channels(self.nusc, scene)
        calib = self.calibration(scene, cameras)
        events = self.events(scene, cameras)
        tmp = out_dir / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            try:
                self._write(tmp / name, scene, cameras, calib, events, bar)
            except WriterError as err:
                raise BagError(f"{final}: writing the bag failed ({err})") from None
            save_calibration(tmp / name / FILE_NAME, calib)
            os.rename(tmp / name, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _write(self, path: Path, scene, cameras, calib: RigCalibration, events: list[_Event], bar) -> None:
        opts = self.options
        plugin = StoragePlugin.MCAP if opts.storage == "mcap" else StoragePlugin.SQLITE3
        with Writer(path, version=BAG_VERSION, storage_plugin=plugin) as writer:

            def connect(topic: str, msgtype: str, profile: Qos):
                return writer.add_connection(topic, msgtype, typestore=m.TYPESTORE, offered_qos_profiles=[profile])

            tf_conn = connect(TF_STATIC_TOPIC, m.TF_MESSAGE, LATCHED_QOS)
            lidar_conn = connect(LIDAR_TOPIC, m.POINT_CLOUD2, SENSOR_QOS)
            odom_conn = connect(ODOM_TOPIC, m.ODOMETRY, SENSOR_QOS)
            label_conn = connect(LABELS_TOPIC, m.POINT_CLOUD2, LATCHED_QOS) if opts.labels != "none" else None
            image_conns, info_conns = {}, {}
            for name in cameras:
                image_topic, info_topic = camera_topics(name)
                image_conns[name] = connect(image_topic, m.COMPRESSED_IMAGE, SENSOR_QOS)
                info_conns[name] = connect(info_topic, m.CAMERA_INFO, LATCHED_QOS)

            def put(conn, stamp_us: int, msg) -> None:
                writer.write(conn, stamp_us * 1000, m.serialize(msg))

            start_us = events[0].stamp_us
            children = {calib.lidar_frame: calib.lidar2ego}
            children.update({n: calib.lidar2ego @ c.cam2lidar for n, c in calib.cameras.items()})
            put(tf_conn, start_us, m.tf_message(start_us * 1000, opts.base_frame, children))
            labelled = 0
            for event in events:
                stamp_ns = event.stamp_us * 1000
                if event.channel == "odom":
                    r = event.record
                    put(
                        odom_conn,
                        event.stamp_us,
                        m.odometry(stamp_ns, opts.odom_frame, opts.base_frame, r["pose"], r["linear"], r["angular"]),
                    )
                    continue
                sd = event.record
                file_path = Path(self.nusc.dataroot) / sd["filename"]
                if event.channel == LIDAR_CHANNEL:
                    read_pcd_bin_check(file_path)
                    points = np.frombuffer(_read(file_path), dtype=LIDAR_DTYPE)
                    put(lidar_conn, event.stamp_us, m.point_cloud(stamp_ns, LIDAR_CHANNEL, points))
                    if sd["is_key_frame"]:
                        if label_conn is not None and self._put_labels(label_conn, put, sd, event.stamp_us):
                            labelled += 1
                        if bar is not None:
                            bar.update(1)
                    continue
                self._check_static(sd, event.channel, calib, scene)
                data = _read(file_path)
                fmt = IMAGE_FORMATS.get(str(sd["fileformat"]).lower())
                if fmt is None:
                    raise DataError(
                        f"{file_path}: image format {sd['fileformat']!r} is not one of {sorted(IMAGE_FORMATS)}"
                    )
                height, width = image_size(data, file_path)
                put(image_conns[event.channel], event.stamp_us, m.compressed_image(stamp_ns, event.channel, data, fmt))
                k = calib.cameras[event.channel].cam2img
                put(info_conns[event.channel], event.stamp_us, m.camera_info(stamp_ns, event.channel, k, height, width))
            if label_conn is not None and labelled == 0:
                log.warning(
                    "scene %s: no %s labels found under %s; the bag has no %s messages",
                    scene["name"],
                    opts.labels,
                    self.label_reader.label_root,
                    LABELS_TOPIC,
                )

    def _put_labels(self, conn, put, lidar_sd: dict, stamp_us: int) -> bool:
        labels = self.label_reader.labels(lidar_sd["sample_token"])
        if labels is None:
            return False
        idx = np.argwhere(labels != EMPTY)
        points = label_points(labels[idx[:, 0], idx[:, 1], idx[:, 2]], SURROUNDOCC_GRID.index_to_center(idx))
        put(conn, stamp_us, m.point_cloud(stamp_us * 1000, LIDAR_CHANNEL, points))
        return True

    def _check_static(self, sd: dict, channel: str, calib: RigCalibration, scene: dict) -> None:
        """A camera whose calibration changes inside the scene cannot be described by one /tf_static."""
        cs = self.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        if not np.allclose(np.asarray(cs["camera_intrinsic"]), calib.cameras[channel].cam2img):
            raise DataError(f"scene {scene['name']}: {channel} intrinsics change at sample_data {sd['token']}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None


def convert_nuscenes(
    dataroot: str | os.PathLike[str],
    version: str,
    out: str | os.PathLike[str],
    scenes: Iterable[str] | None = None,
    options: ConvertOptions | None = None,
) -> list[Path]:
    """Convert scenes of a nuScenes-layout dataset to bags `<out>/<scene name>/`.

    Args:
        dataroot: the dataset folder (real nuScenes or `tacocc generate-scenes` output).
        version: the table folder, e.g. "v1.0-mini".
        out: output folder (created); no bag of the same name may exist in it.
        scenes: scene names; None converts every scene.
        options: storage, labels, frames, progress bar.

    Returns:
        The bag folders written, in the order of `scenes`.
    """
    options = options or ConvertOptions()
    options.validate()
    table_dir = Path(dataroot) / version
    if not table_dir.is_dir():
        raise DataError(f"{table_dir}: no nuScenes tables for version {version!r}")
    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    converter = SceneConverter(nusc, options)
    names = list(scenes) if scenes else [s["name"] for s in nusc.scene]
    out = Path(out)
    for name in names:  # check everything before writing anything
        converter.scene(name)
        if (out / name).exists():
            raise FileExistsError(f"{out / name}: bag already exists; choose a new --out or remove it")
    total = sum(converter.scene(n)["nbr_samples"] for n in names)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tqdm(total=total, unit="sample", disable=not options.progress) as bar:
        for name in names:
            bar.set_description(name)
            written.append(converter.convert(name, out, bar))
    return written
