"""Where a rig comes from: a nuScenes scene, a bag, its calibration file, or a `calib.json` (no ROS).

Every source gives the *rig* transforms: camera -> LiDAR through the vehicle frame with both sensors on
the same vehicle pose, `cam2lidar = inv(lidar2ego) @ cam2ego`, from nuScenes' `calibrated_sensor` table.

The trap: a nuScenes sample's `lidar2cam` (mmdetection3d's info files, the `lidar2cam` of
`calib.json`) goes LiDAR -> ego at the LiDAR stamp -> global -> ego at the camera stamp -> camera. The
cameras fire up to ~50 ms away from the LiDAR sweep, so at 10 m/s that transform also holds up to
0.4 m of the vehicle's own motion, different for every sample. The node corrects for motion itself (the
odometry), so it needs the rig; `sample_lidar2cam` computes the other one, to show the difference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from tacocc_core.bags.topics import SensorTopics
from tacocc_core.config import NUSCENES_CAMERAS
from tacocc_core.geometry import invert_transform
from tacocc_core.rig.calibration_file import (
    FILE_NAME,
    CalibrationError,
    CameraCalibration,
    RigCalibration,
    load_calibration,
)
from tacocc_core.rig.transform_tree import TransformTreeError, rig_from_transforms

LIDAR_CHANNEL = "LIDAR_TOP"


def _pick(available: Sequence[str], cameras: Sequence[str] | None, source: str) -> list[str]:
    """The cameras asked for (all available ones in nuScenes rig order when None); missing ones raise."""
    if cameras is None:
        return [c for c in NUSCENES_CAMERAS if c in available] + sorted(
            c for c in available if c not in NUSCENES_CAMERAS
        )
    missing = [c for c in cameras if c not in available]
    if missing:
        raise CalibrationError(f"{source}: no camera {', '.join(missing)}; it has {', '.join(available)}")
    return list(cameras)


# --- calib.json (the fixture's layout: lidar.lidar2ego, cameras.<name>.cam2ego / cam2img) -------------------
def rig_from_calib_json(path: str | os.PathLike[str], cameras: Sequence[str] | None = None) -> RigCalibration:
    """The rig of a `calib.json`: cam2lidar = inv(lidar.lidar2ego) @ cameras.<name>.cam2ego.

    The file's per-camera `lidar2cam` (a sample's, motion included) is deliberately not used.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CalibrationError(f"{path}: not a readable JSON file ({err})") from None
    try:
        lidar2ego = np.asarray(data["lidar"]["lidar2ego"], dtype=np.float64)
        entries = data["cameras"]
        names = _pick(list(entries), cameras, str(path))
        cams = {
            name: CameraCalibration(
                cam2lidar=invert_transform(lidar2ego) @ np.asarray(entries[name]["cam2ego"], dtype=np.float64),
                cam2img=np.asarray(entries[name]["cam2img"], dtype=np.float64),
                frame_id=name,
            )
            for name in names
        }
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, CalibrationError):
            raise
        raise CalibrationError(
            f"{path}: expected lidar.lidar2ego and cameras.<name>.cam2ego / cam2img 4x4 / 3x3 matrices ({err!r})"
        ) from None
    return RigCalibration(LIDAR_CHANNEL, cams, lidar2ego)


# --- a nuScenes-layout dataset (real, or `tacocc generate-scenes`) -----------------------------------------
def _calibrated_sensor2ego(nusc, sd: dict) -> np.ndarray:
    from tacocc_core.geometry import pose_to_transform

    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return pose_to_transform(cs["translation"], cs["rotation"])


def open_nuscenes(dataroot: str | os.PathLike[str], version: str):
    """nuscenes-devkit's NuScenes on `dataroot/version`; CalibrationError when the tables are absent."""
    from nuscenes.nuscenes import NuScenes

    if not (Path(dataroot) / version).is_dir():
        raise CalibrationError(f"{Path(dataroot) / version}: no nuScenes tables for version {version!r}")
    return NuScenes(version=version, dataroot=str(dataroot), verbose=False)


def find_scene(nusc, name: str) -> dict:
    for scene in nusc.scene:
        if scene["name"] == name:
            return scene
    known = ", ".join(s["name"] for s in nusc.scene[:20])
    raise CalibrationError(f"no scene named {name!r} in {nusc.dataroot}; scenes: {known}")


def rig_from_nuscenes(nusc, scene_name: str, cameras: Sequence[str] | None = None) -> RigCalibration:
    """The rig of one scene from the `calibrated_sensor` table (the same record for every keyframe).

    A channel whose calibrated_sensor changes inside the scene raises CalibrationError: one file cannot
    describe it.
    """
    scene = find_scene(nusc, scene_name)
    first = nusc.get("sample", scene["first_sample_token"])
    channels = [
        c
        for c in first["data"]
        if nusc.get(
            "sensor",
            nusc.get("calibrated_sensor", nusc.get("sample_data", first["data"][c])["calibrated_sensor_token"])[
                "sensor_token"
            ],
        )["modality"]
        == "camera"
    ]
    names = _pick(channels, cameras, f"scene {scene_name}")
    token = scene["first_sample_token"]
    while token:  # every keyframe must carry the first keyframe's calibration
        sample = nusc.get("sample", token)
        for channel in (LIDAR_CHANNEL, *names):
            cs_token = nusc.get("sample_data", sample["data"][channel])["calibrated_sensor_token"]
            first_token = nusc.get("sample_data", first["data"][channel])["calibrated_sensor_token"]
            if cs_token != first_token:
                raise CalibrationError(
                    f"scene {scene_name}: {channel} has calibrated_sensor {cs_token} at sample {token}, "
                    f"{first_token} at the first; one calibration file cannot describe both"
                )
        token = sample["next"]
    lidar2ego = _calibrated_sensor2ego(nusc, nusc.get("sample_data", first["data"][LIDAR_CHANNEL]))
    cams = {}
    for name in names:
        sd = nusc.get("sample_data", first["data"][name])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        cams[name] = CameraCalibration(
            cam2lidar=invert_transform(lidar2ego) @ _calibrated_sensor2ego(nusc, sd),
            cam2img=np.asarray(cs["camera_intrinsic"], dtype=np.float64),
            frame_id=name,
        )
    return RigCalibration(LIDAR_CHANNEL, cams, lidar2ego)


def sample_lidar2cam(nusc, sample_token: str, camera: str) -> np.ndarray:
    """A sample's motion-affected LiDAR -> camera (4, 4): through the ego poses at both sensor stamps.

    What mmdetection3d-style info files store as `lidar2cam`; not a rig transform (see the module docstring).
    """
    from tacocc_core.data.nuscenes_reader import sensor2global

    sample = nusc.get("sample", sample_token)
    lidar2global = sensor2global(nusc, sample["data"][LIDAR_CHANNEL])
    cam2global = sensor2global(nusc, sample["data"][camera])
    return invert_transform(cam2global) @ lidar2global


# --- a bag: /tf_static + camera_info, or the calibration.yaml beside it -------------------------------------
def rig_from_bag(
    path: str | os.PathLike[str],
    cameras: Sequence[str] | None = None,
    ego_frame: str | None = None,
    topics: SensorTopics | None = None,
    note: Callable[[str], object] | None = None,
) -> RigCalibration:
    """The rig a bag carries: /tf_static resolved by the TF logic the node uses, K and size from each camera_info.

    A bag without /tf_static falls back to the `calibration.yaml` beside it (what `tacocc convert-nuscenes`
    writes). The LiDAR frame is the first LiDAR cloud's frame id; each camera's frame is its camera_info's
    frame id. Topic names come from `topics` (the nodes' parameters; default the converter's names);
    the cameras are `cameras`, else those `topics` names, else every `/<NAME>/camera_info` of the bag.
    `ego_frame` overrides `topics.ego_frame`. CalibrationError names the bag and what is missing.
    """
    from tacocc_core.bags.reading import BagError, BagReader

    path = Path(path)
    topics = topics or SensorTopics()
    ego_frame = ego_frame or topics.ego_frame
    with BagReader(path) as reader:
        if topics.tf_static not in reader.topics:
            side = (path if path.is_dir() else path.parent) / FILE_NAME
            if not side.is_file():
                raise CalibrationError(f"{path}: the bag has no {topics.tf_static} and there is no {side}")
            rig = load_calibration(side, note)
            names = _pick(list(rig.cameras), cameras, str(side))
            return replace(rig, cameras={n: rig.cameras[n] for n in names})
        if cameras is None and topics.cameras:
            cameras = topics.cameras
        if cameras is None:
            available = [t.split("/")[1] for t in reader.topics if t.endswith("/camera_info") and t.count("/") == 2]
            names = _pick(available, None, str(path))
        else:
            names = list(cameras)
        info_topics = {topics.info(n): n for n in names}
        absent = [f"no topic {t} (sensor_msgs/msg/CameraInfo); set {topics.param_of('info', n)}"
                  for t, n in info_topics.items() if t not in reader.topics]  # fmt: skip
        if absent:
            raise CalibrationError(f"{path}: " + "; ".join(absent))
        lidar = [topics.lidar] if topics.lidar in reader.topics else []
        transforms, infos, lidar_frame = [], {}, None
        try:
            for raw in reader.messages([topics.tf_static, *info_topics, *lidar]):
                if raw.topic == topics.tf_static:
                    transforms.extend(reader.decode(raw).transforms)
                elif raw.topic == topics.lidar:
                    lidar_frame = lidar_frame or reader.decode(raw).header.frame_id
                elif info_topics[raw.topic] not in infos:
                    infos[info_topics[raw.topic]] = reader.decode(raw)
                if (lidar_frame is not None or not lidar) and len(infos) == len(names) and transforms:
                    if _resolves(transforms, lidar_frame or LIDAR_CHANNEL, ego_frame, infos):
                        break  # else a later /tf_static message (another static broadcaster) may complete it
        except BagError as err:
            raise CalibrationError(str(err)) from None
    lidar_frame = lidar_frame or LIDAR_CHANNEL
    try:
        found = rig_from_transforms(
            transforms, lidar_frame, ego_frame, {n: infos[n].header.frame_id or n for n in infos}
        )
    except TransformTreeError as err:
        raise CalibrationError(f"{path}: {topics.tf_static}: {err}") from None
    problems = [f"{n}: {why}" for n, why in found.missing.items()]
    problems += [f"{n}: no camera_info message on {topics.info(n)}" for n in names if n not in infos]
    if problems:
        raise CalibrationError(f"{path}: {topics.tf_static} does not give the rig: " + "; ".join(problems))
    assert found.lidar2ego is not None  # else "lidar2ego" is among found.missing, raised above
    cams = {}
    for n in names:
        info = infos[n]
        size = (int(info.height), int(info.width)) if info.height > 0 and info.width > 0 else None
        cams[n] = CameraCalibration(
            found.cam2lidar[n], np.asarray(info.k, dtype=np.float64).reshape(3, 3), info.header.frame_id or n, size
        )
    return RigCalibration(lidar_frame, cams, found.lidar2ego, ego_frame)


def _resolves(transforms: list, lidar_frame: str, ego_frame: str, infos: dict) -> bool:
    """Whether the /tf_static transforms read so far give every camera and lidar2ego."""
    try:
        found = rig_from_transforms(
            transforms, lidar_frame, ego_frame, {n: i.header.frame_id or n for n, i in infos.items()}
        )
    except TransformTreeError:
        return False
    return not found.missing


def bag_rig(
    path: str | os.PathLike[str],
    cameras: Sequence[str],
    topics: SensorTopics | None = None,
    calibration: str | os.PathLike[str] = "",
    note: Callable[[str], object] | None = None,
) -> tuple[RigCalibration, str]:
    """(rig, where it came from) for reading a bag: from a file or derived from the bag.

    `calibration` if given, else the bag's calibration.yaml, else the rig derived from its /tf_static and
    camera_info (`rig_from_bag`). The second item is a sentence for the log: "rig of BAG from FILE" or
    "rig of BAG from its /tf_static and camera_info". CalibrationError names the file or bag and the problem.
    """
    path = Path(path)
    topics = topics or SensorTopics()
    side = (path if path.is_dir() else path.parent) / FILE_NAME
    file = Path(calibration) if calibration else side if side.is_file() else None
    if file is not None:
        rig = load_calibration(file, note)
        return rig, f"rig of {path} from {file}"
    rig = rig_from_bag(path, cameras, topics.ego_frame, topics, note)
    return rig, f"rig of {path} from its {topics.tf_static} and camera_info"
