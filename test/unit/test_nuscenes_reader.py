import json
import shutil

import matplotlib
import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes

from tacocc_core.config import NUSCENES_CAMERAS, load_preset
from tacocc_core.data.nuscenes_reader import DataError, NuScenesReader, ReaderOptions, read_pcd_bin
from tacocc_core.data.synthetic.sensors import APPEARANCE
from tacocc_core.geometry import in_image, invert_transform, project_points
from tacocc_core.labels import SURROUNDOCC_GRID, LabelFileError

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def nusc(synthetic_dataset):
    return NuScenes("v1.0-mini", str(synthetic_dataset), verbose=False)


@pytest.fixture(scope="module")
def full_grid_config():
    """The tiny preset on the SurroundOcc grid (labels unresampled), network images 90x160."""
    import dataclasses

    cfg = load_preset("tiny")
    grid = dataclasses.replace(cfg.grid, x_range=(-50.0, 50.0), y_range=(-50.0, 50.0), voxel_size=0.5)
    cams = dataclasses.replace(cfg.cameras, image_size=(90, 160))
    return dataclasses.replace(cfg, grid=grid, cameras=cams)


def test_devkit_lookups_and_rendering(nusc, tmp_path):
    assert len(nusc.scene) == 2 and len(nusc.sample) == 8
    sample = nusc.sample[2]
    assert set(sample["data"]) == {*NUSCENES_CAMERAS, "LIDAR_TOP"}
    path, boxes, k = nusc.get_sample_data(sample["data"]["CAM_FRONT"])
    assert path.endswith(".jpg") and k.shape == (3, 3)

    def attributes(ann_token):
        ann = nusc.get("sample_annotation", ann_token)
        return [nusc.get("attribute", t)["name"] for t in ann["attribute_tokens"]]

    moving = [a for a in sample["anns"] if any(n.endswith("moving") for n in attributes(a))]
    assert moving
    speeds = [np.linalg.norm(nusc.box_velocity(a)[:2]) for a in moving]
    assert all(0.5 < s < 15 for s in speeds)
    nusc.render_sample_data(sample["data"]["LIDAR_TOP"], nsweeps=2, out_path=str(tmp_path / "l.png"), verbose=False)
    nusc.render_sample_data(sample["data"]["CAM_FRONT"], out_path=str(tmp_path / "c.png"), verbose=False)
    assert (tmp_path / "l.png").stat().st_size > 1000 and (tmp_path / "c.png").stat().st_size > 1000


def test_frame_contents(nusc):
    cfg = load_preset("tiny")
    reader = NuScenesReader(nusc, cfg)
    frame = reader.frame(nusc.sample[2]["token"])
    assert frame.images.shape == (6, 64, 176, 3) and frame.points.dtype == np.float32
    lag = frame.points[:, 4]
    assert lag.min() == 0 and 0.05 <= lag.max() <= 0.11  # 2 previous sweeps at 20 Hz
    assert frame.labels.shape == (48, 48, 8) and {4, 11, 13}.issubset(set(np.unique(frame.labels).tolist()))
    # motion compensation: static ground points of all sweeps lie on one plane in the keyframe frame
    ground = frame.points[(np.abs(frame.points[:, 0]) < 8) & (np.abs(frame.points[:, 1]) < 8)]
    assert np.ptp(np.percentile(ground[:, 2], [5, 50])) < 0.3


def _classify(rgb):
    """(N, 3) pixel colours -> (N,) the class whose shaded base colour line passes closest."""
    base = APPEARANCE[1:]
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    proj = np.clip(rgb.astype(float) @ unit.T, 0, None)
    dist = np.linalg.norm(rgb[:, None, :] - proj[..., None] * unit[None], axis=-1)
    return np.argmin(dist, axis=1) + 1


def test_lidar_camera_labels_agree(nusc, full_grid_config):
    """A LiDAR point projected into a camera lands on the class that the label grid holds at the point."""
    reader = NuScenesReader(nusc, full_grid_config)
    frame = reader.frame(nusc.sample[5]["token"])
    pts = frame.points[frame.points[:, 4] == 0]
    idx, inside = SURROUNDOCC_GRID.point_to_index(pts[:, :3])
    idx = np.clip(idx, 0, np.array(SURROUNDOCC_GRID.shape) - 1)
    label = np.where(inside, frame.labels[idx[:, 0], idx[:, 1], idx[:, 2]], 0)
    agree = total = 0
    shuffled = 0
    rng = np.random.default_rng(0)
    for v in range(6):
        uv, depth = project_points(pts[:, :3], invert_transform(frame.cam2lidar[v]), frame.cam2img[v])
        ok = in_image(uv, depth, 160, 90) & (label > 0) & (label < 255)
        px = frame.images[v][uv[ok, 1].astype(int), uv[ok, 0].astype(int)]
        seen = _classify(px)
        agree += (seen == label[ok]).sum()
        shuffled += (seen == rng.permutation(label[ok])).sum()
        total += ok.sum()
    assert total > 2000
    assert agree / total > 0.8, agree / total
    assert shuffled / total < 0.6


def test_bad_inputs(synthetic_dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synthetic_dataset, root)
    nusc = NuScenes("v1.0-mini", str(root), verbose=False)
    cfg = load_preset("tiny")
    sample = nusc.sample[1]
    lidar = root / nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["filename"]
    data = lidar.read_bytes()
    lidar.write_bytes(data[:-6])
    with pytest.raises(DataError, match="not a whole number"):
        NuScenesReader(nusc, cfg).frame(sample["token"])
    with pytest.raises(DataError, match=lidar.name):
        read_pcd_bin(lidar)
    lidar.write_bytes(data)
    label = root / "surroundocc" / "samples" / f"{lidar.name}.npy"
    good = np.load(label)
    bad = good.copy()
    bad[0, 0] = 400
    np.save(label, bad)
    with pytest.raises(LabelFileError, match="outside the grid"):
        NuScenesReader(nusc, cfg).frame(sample["token"])
    bad = good.copy()
    bad[0, 3] = 42
    np.save(label, bad)
    with pytest.raises(LabelFileError, match="unknown labels"):
        NuScenesReader(nusc, cfg).frame(sample["token"])
    np.save(label, good)
    cam = root / nusc.get("sample_data", sample["data"]["CAM_BACK"])["filename"]
    cam.unlink()
    with pytest.raises(DataError, match=f"{sample['token']}.*CAM_BACK"):
        NuScenesReader(nusc, cfg).frame(sample["token"])
    blank = NuScenesReader(nusc, cfg, ReaderOptions(missing_camera="blank")).frame(sample["token"])
    assert blank.camera_valid.tolist() == [True, True, True, False, True, True] and blank.images[3].max() == 0
    with pytest.raises(DataError, match="unknown sample token"):
        NuScenesReader(nusc, cfg).frame("nope")
    with pytest.raises(DataError, match="no nuScenes tables"):
        NuScenesReader.open(root, "v9", cfg)


def test_real_fixture_calibration_chain(nuscenes_frame_dir):
    """The real rig through the reader's chain with one ego pose: cam2lidar = inv(lidar2ego) @ cam2ego.

    The fixture's lidar2cam went through each sensor's own ego pose (cameras fire up to 43 ms before the
    LiDAR, the car moves), so rotations agree closely and translations within that ego motion.
    """
    from tacocc_core.data.synthetic.rig import load_rig

    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    rig = load_rig(nuscenes_frame_dir / "calib.json")
    for name, cam in calib["cameras"].items():
        cam2lidar = invert_transform(rig.lidar2ego) @ rig.cam2ego[name]
        lidar2cam = invert_transform(cam2lidar)
        np.testing.assert_allclose(lidar2cam[:3, :3], np.array(cam["lidar2cam"])[:3, :3], atol=5e-3)
        assert np.linalg.norm(lidar2cam[:3, 3] - np.array(cam["lidar2cam"])[:3, 3]) < 0.5
    pts = read_pcd_bin(nuscenes_frame_dir / calib["lidar"]["file"])
    assert pts.shape == (34688, 5)


def test_intensity_scale_multiplies_the_intensity_only(synthetic_dataset):
    cfg = load_preset("tiny")
    plain = NuScenesReader.open(synthetic_dataset, "v1.0-mini", cfg)
    token = plain.nusc.sample[0]["token"]
    base = plain.frame(token).points
    for scale in (0.0, 10.0):
        scaled = NuScenesReader.open(synthetic_dataset, "v1.0-mini", cfg, ReaderOptions(intensity_scale=scale))
        points = scaled.frame(token).points
        np.testing.assert_array_equal(points[:, [0, 1, 2, 4]], base[:, [0, 1, 2, 4]])
        np.testing.assert_allclose(points[:, 3], base[:, 3] * scale, rtol=1e-6)
    assert base[:, 3].std() > 0
