import numpy as np
import pytest
import torch
from nuscenes.nuscenes import NuScenes

from tacocc_core.config import load_preset
from tacocc_core.data.augment import flip_y
from tacocc_core.data.dataset import AugmentOptions, SequenceDataset, make_collate
from tacocc_core.data.nuscenes_reader import NuScenesReader, ReaderOptions
from tacocc_core.data.sequences import split_scenes, windows
from tacocc_core.geometry import in_image, invert_transform, project_points


@pytest.fixture(scope="module")
def reader(synthetic_dataset):
    nusc = NuScenes("v1.0-mini", str(synthetic_dataset), verbose=False)
    return NuScenesReader(nusc, load_preset("tiny"))


def test_windows_stay_in_scene():
    assert windows([["a", "b", "c"], ["d", "e"]], 2) == [["a", "b"], ["b", "c"], ["d", "e"]]
    assert windows([["a"]], 2) == []


def test_dataset_and_collate(reader):
    assert split_scenes(reader.nusc, "train") == ["synth-0003-0000"]
    ds = SequenceDataset(reader, "train")  # tiny: T = 3 of 4 keyframes -> 2 windows
    assert len(ds) == 2
    batch = make_collate(reader.config)([ds[0], ds[1]])
    assert batch["images"].shape == (2, 3, 6, 3, 64, 176) and batch["images"].dtype == torch.uint8
    assert batch["labels"].shape == (2, 3, 48, 48, 8) and batch["has_labels"].all()
    assert batch["points"].dtype == torch.float32
    stamps = batch["stamps_ns"][0]
    assert torch.all(stamps[1:] - stamps[:-1] == 500_000_000)


def test_missing_camera_skips_sample(synthetic_dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synthetic_dataset, root)
    nusc = NuScenes("v1.0-mini", str(root), verbose=False)
    scene = next(s for s in nusc.scene if s["name"] == "synth-0003-0000")
    second = nusc.get("sample", scene["first_sample_token"])["next"]
    (root / nusc.get("sample_data", nusc.get("sample", second)["data"]["CAM_FRONT"])["filename"]).unlink()
    reader = NuScenesReader(nusc, load_preset("tiny"), ReaderOptions(missing_camera="skip"))
    assert len(SequenceDataset(reader, "train", length=2)) == 1  # only keyframes 3-4 remain together


def test_flip_keeps_points_on_their_pixels(reader):
    frame = reader.frame(reader.nusc.sample[1]["token"])
    flipped = flip_y(frame, reader.grid)
    pts = frame.points[frame.points[:, 4] == 0][:, :3]
    fpts = flipped.points[flipped.points[:, 4] == 0][:, :3]
    h, w = frame.images.shape[1:3]
    same = total = 0
    for v in range(6):
        uv, d = project_points(pts, invert_transform(frame.cam2lidar[v]), frame.cam2img[v])
        fuv, fd = project_points(fpts, invert_transform(flipped.cam2lidar[v]), flipped.cam2img[v])
        ok = in_image(uv, d, w, h) & in_image(fuv, fd, w, h)
        np.testing.assert_allclose(fuv[ok, 0], w - uv[ok, 0], atol=1e-6)
        a = frame.images[v][uv[ok, 1].astype(int), uv[ok, 0].astype(int)]
        b = flipped.images[v][fuv[ok, 1].astype(int), np.minimum(fuv[ok, 0].astype(int), w - 1)]
        same += (np.abs(a.astype(int) - b).max(axis=1) <= 2).sum()
        total += ok.sum()
    assert total > 500 and same / total > 0.95
    np.testing.assert_array_equal(flipped.labels[:, ::-1], frame.labels)
    aug = SequenceDataset(reader, "train", augment=AugmentOptions(flip_prob=1.0, colour_jitter=0.1))[0]
    assert np.linalg.det(aug[0].cam2lidar[0][:3, :3]) > 0
