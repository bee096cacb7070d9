"""Write synthetic streets as a nuScenes dataset that `NuScenes(version, dataroot)` loads unmodified.

Layout under the output folder (as nuScenes, plus SurroundOcc-format labels and a split file):
    <version>/*.json                         the 13 nuScenes tables
    samples/CAM_*/<log>__CAM_*__<us>.jpg     keyframe images of the six cameras
    samples/LIDAR_TOP/<log>__LIDAR_TOP__<us>.pcd.bin, sweeps/LIDAR_TOP/...   (N, 5) float32 x,y,z,i,ring
    maps/<token>.png                         drivable-area mask at 0.1 m/pixel (the map table's stub)
    surroundocc/samples/<LIDAR_TOP file name>.npy   SurroundOcc (N, 4) [x, y, z, label] occupied voxels
    splits.json                              {"train": [scene names], "val": [...]}
Timing as nuScenes: keyframes at 2 Hz, LiDAR sweeps at 20 Hz before each keyframe, each camera firing
at its offset from the LiDAR stamp in the rig (`rig.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from tacocc_core.data.synthetic.domain import Domain
from tacocc_core.data.synthetic.intensity import sensor_gain
from tacocc_core.data.synthetic.rig import Rig, load_rig
from tacocc_core.data.synthetic.sensors import lidar_sweep, render_camera, voxelize
from tacocc_core.data.synthetic.street import CATEGORY, SIDEWALK_OUTER, Street, build_street
from tacocc_core.labels import SURROUNDOCC_GRID, dense_to_surroundocc

KEYFRAME_US = 500_000
SWEEP_US = 50_000
MAP_RESOLUTION = 0.1
ANNOTATION_RANGE = 60.0


@dataclass(frozen=True)
class GenerateOptions:
    """What `generate_dataset` writes.

    Args:
        scenes: number of scenes (one log and one map each).
        keyframes: keyframes per scene.
        seed: every random draw derives from it; the same options give the same bytes.
        image_size: (width, height) of the camera images.
        version: folder name of the tables (what `NuScenes(version=...)` is given).
        sweeps_per_keyframe: non-key LiDAR sweeps before each keyframe (nuScenes has 9 at 20 Hz).
        lidar_azimuths: firing directions per revolution (the HDL-32E at 20 Hz has about 1084).
        jpeg_quality: quality of the written JPEGs.
        workers: processes, one scene each at a time.
        val_scenes: scenes of the `val` split in splits.json (the last ones); None: a fifth of them
            (at least one when there are two or more scenes).
        domain: colours, lighting, LiDAR and camera mounting (domain.py); the default is the built-in one.
    """

    scenes: int = 2
    keyframes: int = 20
    seed: int = 0
    image_size: tuple[int, int] = (400, 225)
    version: str = "v1.0-mini"
    sweeps_per_keyframe: int = 9
    lidar_azimuths: int = 1084
    jpeg_quality: int = 90
    workers: int = 1
    val_scenes: int | None = None
    domain: Domain = field(default_factory=Domain)

    def validate(self) -> None:
        for name in ("scenes", "keyframes", "lidar_azimuths", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"generate: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.sweeps_per_keyframe <= 9:
            raise ValueError(f"generate: sweeps_per_keyframe must be in 0..9, got {self.sweeps_per_keyframe}")
        w, h = self.image_size
        if w < 16 or h < 16:
            raise ValueError(f"generate: image size must be at least 16x16, got {w}x{h}")
        if not self.version or "/" in self.version:
            raise ValueError(f"generate: version must be a plain folder name, got {self.version!r}")
        if self.val_scenes is not None and not 0 <= self.val_scenes <= self.scenes:
            raise ValueError(f"generate: val_scenes must be in 0..scenes ({self.scenes}), got {self.val_scenes}")
        self.domain.validate("generate: domain")


def token(*parts: object) -> str:
    """Deterministic 32-hex token from its parts (the format of nuScenes tokens)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def _quat_wxyz(rotation: np.ndarray) -> list[float]:
    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return [float(w), float(x), float(y), float(z)]


def _pose_record(tok: str, pose: np.ndarray, stamp: int) -> dict:
    return {"token": tok, "timestamp": stamp, "rotation": _quat_wxyz(pose[:3, :3]), "translation": pose[:3, 3].tolist()}


def _place_street(rng: np.random.Generator, duration_s: float) -> Street:
    """Build a street and shift it so that its map lies at positive global coordinates (map image origin)."""
    street = build_street(rng, duration_s, (0.0, 0.0))
    x0, x1 = street.length
    corners = np.array([[x, y, 0.0, 1.0] for x in (x0, x1) for y in (-40.0, 40.0)])
    glob = corners @ street.street2global.T
    street.street2global[:2, 3] -= glob[:, :2].min(axis=0) - 5.0
    return street


def _write_map(path: Path, street: Street) -> None:
    """Drivable area + sidewalks as a 0/255 PNG, 0.1 m per pixel, row 0 at the largest global y."""
    x0, x1 = street.length
    corners = np.array([[x0, -SIDEWALK_OUTER], [x1, -SIDEWALK_OUTER], [x1, SIDEWALK_OUTER], [x0, SIDEWALK_OUTER]])
    glob = np.c_[corners, np.zeros(4), np.ones(4)] @ street.street2global.T
    width = int(np.ceil(glob[:, 0].max() / MAP_RESOLUTION)) + 50
    height = int(np.ceil(glob[:, 1].max() / MAP_RESOLUTION)) + 50
    mask = np.zeros((height, width), dtype=np.uint8)
    pix = np.stack([glob[:, 0] / MAP_RESOLUTION, height - glob[:, 1] / MAP_RESOLUTION], axis=1)
    cv2.fillPoly(mask, [np.round(pix).astype(np.int32)], (255,))
    cv2.imwrite(str(path), mask)


def _scene_tables(root: Path, opts: GenerateOptions, rig: Rig, scene_idx: int) -> dict[str, list[dict]]:
    """Render, write the files of and return the table rows of one scene."""
    seed = opts.seed
    rng = np.random.default_rng([seed, scene_idx])
    duration = (opts.keyframes - 1) * KEYFRAME_US / 1e6
    street = _place_street(rng, duration)
    name = f"synth-{seed:04d}-{scene_idx:04d}"
    log_name = f"synth{seed}-{scene_idx:04d}"
    t_scene = token(seed, "scene", scene_idx)
    t_log = token(seed, "log", scene_idx)
    t_map = token(seed, "map", scene_idx)
    base_us = 1_700_000_000_000_000 + scene_idx * 100_000_000 + seed * 1_000_000_000
    tables: dict[str, list[dict]] = {k: [] for k in ("log", "map", "scene", "sample", "sample_data", "ego_pose")}
    tables.update({k: [] for k in ("calibrated_sensor", "instance", "sample_annotation")})
    (root / "maps").mkdir(exist_ok=True)
    _write_map(root / "maps" / f"{t_map}.png", street)
    tables["log"].append(
        {
            "token": t_log,
            "logfile": log_name,
            "vehicle": opts.domain.name,
            "date_captured": "2026-01-01",
            "location": "synthetic-street",
        }
    )
    tables["map"].append(
        {"token": t_map, "log_tokens": [t_log], "category": "semantic_prior", "filename": f"maps/{t_map}.png"}
    )

    w, h = opts.image_size
    calib_tok = {}
    for channel in (*rig.cameras, "LIDAR_TOP"):
        calib_tok[channel] = token(seed, "calib", scene_idx, channel)
        if channel == "LIDAR_TOP":
            sensor2ego, intrinsic = rig.lidar2ego, []
        else:
            sensor2ego, intrinsic = rig.cam2ego[channel], rig.intrinsics(channel, (h, w)).tolist()
        tables["calibrated_sensor"].append(
            {
                "token": calib_tok[channel],
                "sensor_token": token("sensor", channel),
                "translation": sensor2ego[:3, 3].tolist(),
                "rotation": _quat_wxyz(sensor2ego[:3, :3]),
                "camera_intrinsic": intrinsic,
            }
        )

    sample_tokens = [token(seed, "sample", scene_idx, k) for k in range(opts.keyframes)]
    chains: dict[str, list[dict]] = {c: [] for c in (*rig.cameras, "LIDAR_TOP")}

    def add_sample_data(channel: str, stamp: int, key: bool, sample_tok: str, filename: str, size) -> None:
        tok = token(seed, "sd", scene_idx, channel, stamp)
        t = (stamp - base_us) / 1e6
        pose = street.street2global @ street.ego2street(t)
        tables["ego_pose"].append(_pose_record(tok, pose, stamp))
        chains[channel].append(
            {
                "token": tok,
                "sample_token": sample_tok,
                "ego_pose_token": tok,
                "calibrated_sensor_token": calib_tok[channel],
                "timestamp": stamp,
                "fileformat": filename.rsplit(".", 1)[-1],
                "is_key_frame": key,
                "height": size[0],
                "width": size[1],
                "filename": filename,
            }
        )

    lidar_rng = np.random.default_rng([seed, scene_idx, 1])
    gain = sensor_gain(np.random.default_rng([seed, scene_idx, 2]))  # the scene's LiDAR unit
    if opts.domain.intensity_scale != 1.0:
        gain *= opts.domain.intensity_scale
    elevations = opts.domain.lidar_elevations()
    instance_pts: list[np.ndarray] = []
    for k in range(opts.keyframes):
        key_us = base_us + k * KEYFRAME_US
        for j in range(opts.sweeps_per_keyframe, -1, -1):
            stamp = key_us - j * SWEEP_US
            folder = "samples" if j == 0 else "sweeps"
            filename = f"{folder}/LIDAR_TOP/{log_name}__LIDAR_TOP__{stamp}.pcd.bin"
            points, inst = lidar_sweep(
                street,
                (stamp - base_us) / 1e6,
                rig.lidar2ego,
                opts.lidar_azimuths,
                lidar_rng,
                gain,
                seed * 1000 + scene_idx,
                elevations,
            )
            points.tofile(root / filename)
            add_sample_data("LIDAR_TOP", stamp, j == 0, sample_tokens[k], filename, (0, 0))
            if j == 0:
                instance_pts.append(np.bincount(inst[inst >= 0], minlength=len(street.objects)))
                labels = voxelize(street, (stamp - base_us) / 1e6, rig.lidar2ego, SURROUNDOCC_GRID)
                np.save(root / "surroundocc" / "samples" / f"{Path(filename).name}.npy", dense_to_surroundocc(labels))
        for channel in rig.cameras:
            stamp = key_us + rig.camera_offset_us[channel]
            filename = f"samples/{channel}/{log_name}__{channel}__{stamp}.jpg"
            rgb, _ = render_camera(
                street,
                (stamp - base_us) / 1e6,
                rig.cam2ego[channel],
                rig.intrinsics(channel, (h, w)),
                (h, w),
                opts.domain,
            )
            ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality])
            assert ok, "JPEG encoding failed"
            (root / filename).write_bytes(data.tobytes())
            add_sample_data(channel, stamp, True, sample_tokens[k], filename, (h, w))
        tables["sample"].append(
            {
                "token": sample_tokens[k],
                "timestamp": key_us,
                "prev": sample_tokens[k - 1] if k > 0 else "",
                "next": sample_tokens[k + 1] if k + 1 < opts.keyframes else "",
                "scene_token": t_scene,
            }
        )
    for chain in chains.values():
        for i, rec in enumerate(chain):
            rec["prev"] = chain[i - 1]["token"] if i > 0 else ""
            rec["next"] = chain[i + 1]["token"] if i + 1 < len(chain) else ""
        tables["sample_data"].extend(chain)

    _annotate(tables, street, opts, scene_idx, sample_tokens, base_us, instance_pts)
    tables["scene"].append(
        {
            "token": t_scene,
            "log_token": t_log,
            "nbr_samples": opts.keyframes,
            "first_sample_token": sample_tokens[0],
            "last_sample_token": sample_tokens[-1],
            "name": name,
            "description": f"synthetic street, seed {seed}, ego at {street.ego_speed:.1f} m/s",
        }
    )
    return tables


def _annotate(tables, street: Street, opts: GenerateOptions, scene_idx: int, sample_tokens, base_us, instance_pts):
    """Boxes of the objects within ANNOTATION_RANGE of the ego at each keyframe, chained per instance."""
    seed = opts.seed
    yaw0 = float(np.arctan2(street.street2global[1, 0], street.street2global[0, 0]))
    per_instance: dict[int, list[dict]] = {}
    for k, sample_tok in enumerate(sample_tokens):
        t = k * KEYFRAME_US / 1e6
        ego_xy = street.ego2street(t)[:2, 3]
        for idx, obj in enumerate(street.objects):
            c = obj.center_at(t)
            if np.hypot(*(c[:2] - ego_xy)) > ANNOTATION_RANGE:
                continue
            _, moving_attr, still_attr = CATEGORY[obj.name]
            attr = moving_attr if np.linalg.norm(obj.velocity) > 0.1 else still_attr
            length, width, height = obj.size
            per_instance.setdefault(idx, []).append(
                {
                    "token": token(seed, "ann", scene_idx, idx, k),
                    "sample_token": sample_tok,
                    "instance_token": token(seed, "instance", scene_idx, idx),
                    "visibility_token": "4",
                    "attribute_tokens": [token("attribute", attr)] if attr else [],
                    "translation": (street.street2global @ np.r_[c, 1.0])[:3].tolist(),
                    "size": [float(width), float(length), float(height)],
                    "rotation": _quat_wxyz(Rotation.from_euler("z", yaw0 + obj.yaw).as_matrix()),
                    "num_lidar_pts": int(instance_pts[k][idx]),
                    "num_radar_pts": 0,
                }
            )
    for idx, anns in sorted(per_instance.items()):
        for i, ann in enumerate(anns):
            ann["prev"] = anns[i - 1]["token"] if i > 0 else ""
            ann["next"] = anns[i + 1]["token"] if i + 1 < len(anns) else ""
        tables["sample_annotation"].extend(anns)
        tables["instance"].append(
            {
                "token": token(seed, "instance", scene_idx, idx),
                "category_token": token("category", CATEGORY[street.objects[idx].name][0]),
                "nbr_annotations": len(anns),
                "first_annotation_token": anns[0]["token"],
                "last_annotation_token": anns[-1]["token"],
            }
        )


def _global_tables(rig: Rig) -> dict[str, list[dict]]:
    categories = sorted({c[0] for c in CATEGORY.values()})
    attributes = sorted({a for c in CATEGORY.values() for a in c[1:] if a})
    return {
        "category": [
            {"token": token("category", n), "name": n, "description": n, "index": i} for i, n in enumerate(categories)
        ],
        "attribute": [{"token": token("attribute", n), "name": n, "description": n} for n in attributes],
        "visibility": [
            {"token": str(i + 1), "level": lvl, "description": f"visibility of whole object is {lvl}"}
            for i, lvl in enumerate(("v0-40", "v40-60", "v60-80", "v80-100"))
        ],
        "sensor": [
            {"token": token("sensor", c), "channel": c, "modality": "lidar" if c == "LIDAR_TOP" else "camera"}
            for c in (*rig.cameras, "LIDAR_TOP")
        ],
    }


def mounted(rig: Rig, domain: Domain) -> Rig:
    """`rig` with every camera moved to the domain's mount (`Domain.mount_camera`); the LiDAR stays."""
    if not domain.camera_pitch_deg and not domain.camera_height_offset_m:
        return rig
    cam2ego = {name: domain.mount_camera(pose) for name, pose in rig.cam2ego.items()}
    return Rig(rig.cameras, cam2ego, rig.cam2img, rig.lidar2ego, rig.camera_offset_us)


def generate_dataset(
    out: str | os.PathLike[str], opts: GenerateOptions, calib_path: str | os.PathLike[str] | None = None
) -> Path:
    """Write the dataset to `out` (which must not exist) through a temporary sibling folder and a rename."""
    opts.validate()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: output folder already exists; choose a new path or remove it")
    rig = mounted(load_rig(calib_path), opts.domain)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        for sub in [*(f"samples/{c}" for c in (*rig.cameras, "LIDAR_TOP")), "sweeps/LIDAR_TOP", "surroundocc/samples"]:
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        (tmp / opts.version).mkdir()
        jobs = [(tmp, opts, rig, i) for i in range(opts.scenes)]
        if opts.workers > 1 and opts.scenes > 1:
            with ProcessPoolExecutor(min(opts.workers, opts.scenes)) as pool:
                per_scene = list(pool.map(_scene_tables, *zip(*jobs, strict=True)))
        else:
            per_scene = [_scene_tables(*job) for job in jobs]
        tables = _global_tables(rig)
        for scene in per_scene:
            for name, rows in scene.items():
                tables.setdefault(name, []).extend(rows)
        for name, rows in tables.items():
            (tmp / opts.version / f"{name}.json").write_text(json.dumps(rows, indent=0))
        names = [s["name"] for s in tables["scene"]]
        if opts.val_scenes is not None:
            n_val = opts.val_scenes
        else:
            n_val = 0 if len(names) < 2 else max(1, round(0.2 * len(names)))
        split = {"train": names[: len(names) - n_val], "val": names[len(names) - n_val :]}
        (tmp / "splits.json").write_text(json.dumps(split, indent=1))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
