import json

import numpy as np
import pytest
import torch

from tacocc_core.conditioning.lidar_denoise import DenoiseParams, denoise_mask, denoise_points
from tacocc_core.config import load_preset
from tacocc_core.reference.lidar_denoise import denoise_mask_reference

NAN = float("nan")
INF = float("inf")


def test_each_filter_on_constructed_points():
    params = DenoiseParams(min_range=1.0, max_range=50.0, z_range=(-3.0, 2.0), ego_box=(4.2, 2.0, 2.0))
    points = torch.tensor(
        [
            [10.0, 0.0, 0.0],  # kept
            [NAN, 5.0, 0.0],  # non-finite
            [5.0, INF, 0.0],
            [0.5, 0.0, 0.0],  # too near
            [60.0, 0.0, 0.0],  # too far
            [10.0, 0.0, 2.5],  # too high
            [10.0, 0.0, -3.5],  # too low
            [0.0, 1.9, -0.5],  # ego box: length along y (front of the car)
            [0.9, -1.5, 0.8],  # ego box
            [1.1, 1.5, 0.0],  # beside the car: kept
            [0.0, 1.9, 1.2],  # above the car: kept
        ]
    )
    keep = denoise_mask(points, params)
    assert keep.tolist() == [True] + [False] * 8 + [True, True]
    along_x = DenoiseParams(min_range=1.0, max_range=50.0, z_range=(-3.0, 2.0), ego_forward_axis="x")
    assert denoise_mask(points[7:8], along_x).tolist() == [True]  # 1.9 m sideways of a car along x
    no_box = DenoiseParams(ego_box=(0.0, 0.0, 0.0))
    assert denoise_mask(points[7:9], no_box).tolist() == [True, True]


def test_statistical_outliers_per_frame():
    rng = np.random.default_rng(0)
    cluster = rng.normal([10.0, 10.0, 0.0], 0.3, (200, 3))
    lonely = np.array([[30.0, -20.0, 1.0]])
    xyz = torch.from_numpy(np.concatenate([cluster, lonely, cluster + [5.0, 5.0, 0.0], lonely])).float()
    batch = torch.tensor([0] * 201 + [1] * 201)
    params = DenoiseParams(outlier_neighbours=4, outlier_std=3.0)
    keep = denoise_mask(xyz, params, batch)
    assert not keep[200] and not keep[401]
    assert keep[:200].float().mean() > 0.95 and keep[201:401].float().mean() > 0.95
    assert denoise_mask(xyz, DenoiseParams(outlier_neighbours=0), batch).all()


def test_points_and_batch_stay_paired_and_bad_input():
    points = torch.tensor([[10.0, 0, 0, 1, 0], [0.1, 0, 0, 2, 0], [0, 20.0, 0, 3, 0.05]])
    kept, batch = denoise_points(points, torch.tensor([0, 1, 1]), DenoiseParams())
    assert kept[:, 3].tolist() == [1.0, 3.0] and batch.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"expected \(N, 3\+\) points, got \(4,\)"):
        denoise_mask(torch.zeros(4), DenoiseParams())
    with pytest.raises(ValueError, match="ego_forward_axis must be 'x' or 'y', got 'z'"):
        denoise_mask(torch.zeros(1, 3), DenoiseParams(ego_forward_axis="z"))


def twin_cases() -> torch.Tensor:
    """(N, 5) float32: random points around the car, every non-finite kind, 1e30, and points exactly on
    the range, height and ego-box bounds of the default parameters."""
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-90, 90, (20000, 3)) * rng.choice([1.0, 0.02, 0.05], (20000, 1))
    special = [NAN, INF, -INF, 1e30, -1e30]
    odd = [[a, b, c] for a in special + [1.0] for b in special + [2.0] for c in (NAN, INF, 0.5)]
    bounds = [[80.0, 0, 0], [0, 1.0, 0], [0, 0, 3.0], [0, 0, -5.0], [0, 3.0, 3.0], [1.0, 2.1, 1.0], [1.0, 2.1, -1.0]]
    bounds += [[1.0, 1.5, 0.5], [-1.0, -2.1, 1.0], [1.0000001, 0, 1.0], [0.6, 0.8, 0.0], [48.0, 64.0, 0.0]]
    xyz = np.concatenate([xyz, np.array(odd), np.array(bounds)])
    points = np.concatenate([xyz, rng.uniform(0, 1, (len(xyz), 2))], axis=1)
    return torch.from_numpy(points).float()


@pytest.mark.parametrize(
    "params",
    [
        DenoiseParams(),
        DenoiseParams(ego_forward_axis="x", ego_box=(4.0, 1.5, 2.0), z_range=(-1.0, 1.0), min_range=0.0),
        DenoiseParams(ego_box=(0.0, 0.0, 0.0)),
        DenoiseParams(outlier_neighbours=4),
        DenoiseParams(max_range=INF, z_range=(-INF, INF)),  # infinite bounds: the finiteness test
    ],
)
def test_fast_mask_equals_its_reference_twin(params):
    points = twin_cases()
    batch = torch.arange(len(points)) % 2
    keep = denoise_mask(points, params, batch)
    assert torch.equal(keep, denoise_mask_reference(points, params, batch))
    assert torch.equal(denoise_mask(points.double(), params, batch), keep)  # float64 input as float32
    wild = ~torch.isfinite(points[:, :3]).all(1) | (points[:, :3].abs() > 1e29).any(1)
    assert not keep[wild].any() or params.max_range == INF  # no non-finite or 1e30 row kept with finite bounds
    assert 0 < int(keep.sum()) < len(points)


def test_params_from_config():
    config = load_preset("tiny")
    params = DenoiseParams.from_config(config)
    assert params.max_range == config.lidar.max_range and params.z_range == config.grid.z_range
    assert params.ego_box == config.lidar.ego_box and params.ego_forward_axis == "y"


def test_real_frame_ego_returns_are_removed(nuscenes_frame_dir):
    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    raw = np.fromfile(nuscenes_frame_dir / calib["lidar"]["file"], dtype=np.float32).reshape(-1, 5)
    points = torch.from_numpy(raw)
    config = load_preset("nuscenes_r50_256x704")
    params = DenoiseParams.from_config(config)
    keep = denoise_mask(points, params)
    kept = points[keep]
    length, width, height = params.ego_box
    in_box = (kept[:, 0].abs() <= width / 2) & (kept[:, 1].abs() <= length / 2) & (kept[:, 2].abs() <= height / 2)
    assert not in_box.any()
    # The returns off the car itself (nuScenes LIDAR_TOP: y forward): the hood 1.3-1.8 m ahead and below
    # the sensor, beyond min_range, are only caught by the box.
    hood = (raw[:, 1] > 1.3) & (raw[:, 1] < 1.85) & (np.abs(raw[:, 0]) < 0.7) & (raw[:, 2] < -0.7) & (raw[:, 2] > -1.0)
    assert hood.sum() > 50 and not keep.numpy()[hood].any()
    far = np.linalg.norm(raw[:, :3], axis=1) > 5.0
    assert keep.numpy()[far].mean() > 0.9  # the scene itself is kept
