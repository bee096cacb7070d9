import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from tacocc_core.batch import frames_to_batch
from tacocc_core.checkpoint import load_checkpoint
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.data.sequences import scene_samples, split_scenes
from tacocc_core.geometry import GridSpec
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.model.warp import scaled_grid
from tacocc_core.render.anchors import (
    inside_grid,
    lidar_anchors,
    masked_voxel_anchors,
    predicted_voxel_mask,
    sample_volume,
    voxel_anchors,
)

GRID = GridSpec(lower=(-4.0, -3.0, -1.0), voxel_size=(1.0, 0.5, 2.0), shape=(8, 12, 3))


def trilinear_reference(volume: np.ndarray, points: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Slow twin of `sample_volume`: eight corner voxels per point, weights by hand, border indices clamped."""
    c = volume.shape[0]
    out = np.zeros((len(points), c))
    shape = np.array(grid.shape)
    for n, p in enumerate(points):
        u = (p - np.array(grid.lower)) / np.array(grid.voxel_size) - 0.5  # continuous index of voxel centres
        u = np.clip(u, 0.0, shape - 1)  # beyond the outermost centres: the border value
        i0 = np.floor(u).astype(int)
        f = u - i0
        for corner in itertools.product((0, 1), repeat=3):
            idx = np.minimum(i0 + np.array(corner), shape - 1)
            w = np.prod([f[a] if corner[a] else 1.0 - f[a] for a in range(3)])
            out[n] += w * volume[:, idx[0], idx[1], idx[2]]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_volume_matches_per_point_reference(seed):
    g = torch.Generator().manual_seed(seed)
    volume = torch.randn(5, *GRID.shape, generator=g, dtype=torch.float64)
    lower, upper = np.array(GRID.lower), GRID.upper
    inside = lower + (upper - lower) * torch.rand(40, 3, generator=g, dtype=torch.float64).numpy()
    outside = lower - 1.0 + (upper - lower + 2.0) * torch.rand(10, 3, generator=g, dtype=torch.float64).numpy()
    points = np.concatenate([inside, outside])
    got = sample_volume(volume, torch.from_numpy(points), GRID).numpy()
    np.testing.assert_allclose(got, trilinear_reference(volume.numpy(), points, GRID), atol=1e-10)


def test_sample_volume_reads_voxel_values_at_centres_and_differentiates():
    volume = torch.randn(3, *GRID.shape, dtype=torch.float64, requires_grad=True)
    idx = np.array([[0, 0, 0], [7, 11, 2], [3, 5, 1]])
    centres = torch.from_numpy(GRID.index_to_center(idx))
    got = sample_volume(volume, centres, GRID)
    expected = torch.stack([volume[:, i, j, k] for i, j, k in idx])
    assert torch.allclose(got, expected)
    got.sum().backward()
    assert volume.grad.sum().item() == pytest.approx(9.0)  # each sample's weights sum to one, 3 channels
    with pytest.raises(ValueError, match=r"volume must be \(C, 8, 12, 3\)"):
        sample_volume(volume[:, :2], centres, GRID)


def test_lidar_anchors_keep_finite_points_inside_and_cap_the_count():
    pts = torch.tensor(
        [
            [0.0, 0.0, 0.0, 1.0, 0.0],
            [3.9, 2.9, 4.9, 1.0, 0.0],
            [4.0, 0.0, 0.0, 1.0, 0.0],  # on the upper x face: outside
            [-5.0, 0.0, 0.0, 1.0, 0.0],
            [float("nan"), 0.0, 0.0, 1.0, 0.0],
        ]
    )
    assert inside_grid(pts, GRID).tolist() == [True, True, False, False, False]
    assert torch.equal(lidar_anchors(pts, GRID, 10), pts[:2, :3])
    cloud = torch.rand(500, 4) * torch.tensor([8.0, 6.0, 6.0, 1.0]) + torch.tensor([-4.0, -3.0, -1.0, 0.0])
    a = lidar_anchors(cloud, GRID, 50, torch.Generator().manual_seed(1))
    b = lidar_anchors(cloud, GRID, 50, torch.Generator().manual_seed(1))
    assert a.shape == (50, 3) and torch.equal(a, b)
    assert len({tuple(p) for p in a.tolist()}) == 50  # no point drawn twice
    assert all(tuple(p) in {tuple(q) for q in cloud[:, :3].tolist()} for p in a.tolist())
    assert lidar_anchors(torch.zeros(0, 5), GRID, 10).shape == (0, 3)
    with pytest.raises(ValueError, match=r"points must be \(P, 3\+\)"):
        lidar_anchors(torch.zeros(4, 2), GRID, 10)


def test_voxel_anchors_are_centres_of_non_zero_voxels_largest_first_when_capped():
    features = torch.zeros(4, *GRID.shape)
    features[0, 1, 2, 0] = 0.5
    features[2, 7, 11, 2] = -3.0  # negative values count: |feature|
    features[1, 4, 4, 1] = 1.0
    features[3, 0, 0, 0] = 1e-3
    anchors, index = voxel_anchors(features, GRID, max_count=100)
    assert sorted(map(tuple, index.tolist())) == [(0, 0, 0), (1, 2, 0), (4, 4, 1), (7, 11, 2)]
    np.testing.assert_allclose(anchors.numpy(), GRID.index_to_center(index.numpy()), atol=1e-6)
    _, index = voxel_anchors(features, GRID, max_count=100, threshold=0.01)
    assert sorted(map(tuple, index.tolist())) == [(1, 2, 0), (4, 4, 1), (7, 11, 2)]
    _, index = voxel_anchors(features, GRID, max_count=2)
    assert sorted(map(tuple, index.tolist())) == [(4, 4, 1), (7, 11, 2)]
    anchors, index = voxel_anchors(torch.zeros(4, *GRID.shape), GRID, max_count=100)
    assert anchors.shape == (0, 3) and index.shape == (0, 3)
    with pytest.raises(ValueError, match=r"features must be \(C, 8, 12, 3\)"):
        voxel_anchors(torch.zeros(4, 8, 12), GRID, 5)


def test_masked_voxel_anchors_keep_candidates_highest_score_first_when_capped():
    candidates = torch.zeros(GRID.shape, dtype=torch.bool)
    score = torch.rand(GRID.shape)
    for idx, s in (((1, 2, 0), 0.2), ((4, 4, 1), 0.9), ((7, 11, 2), 0.5)):
        candidates[idx] = True
        score[idx] = s
    anchors, index = masked_voxel_anchors(candidates, score, GRID, max_count=10)
    assert index.tolist() == [[1, 2, 0], [4, 4, 1], [7, 11, 2]]
    np.testing.assert_allclose(anchors.numpy(), GRID.index_to_center(index.numpy()), atol=1e-6)
    _, index = masked_voxel_anchors(candidates, score, GRID, max_count=2)
    assert index.tolist() == [[4, 4, 1], [7, 11, 2]]
    assert masked_voxel_anchors(candidates, score, GRID, 0)[0].shape == (0, 3)
    with pytest.raises(ValueError, match=r"candidates and score must be \(8, 12, 3\)"):
        masked_voxel_anchors(candidates[:4], score, GRID, 2)


def test_predicted_voxel_mask_reads_the_coarse_head():
    logits = torch.zeros(17, *GRID.shape)
    logits[0] = 5.0  # empty everywhere ...
    logits[4, 2, 3, 1] = 9.0  # ... but a car here
    predicted, score = predicted_voxel_mask(logits)
    assert predicted.nonzero().tolist() == [[2, 3, 1]]
    assert score[2, 3, 1] > 0.9 and score[0, 0, 0] < 0.1
    with pytest.raises(ValueError, match=r"needs \(K, X, Y, Z\) coarse logits"):
        predicted_voxel_mask(None)
    with pytest.raises(ValueError, match=r"needs \(K, X, Y, Z\) coarse logits"):
        predicted_voxel_mask(logits[0])


DEMO_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "demo.pt"


def anchor_shares(net, config, frames) -> dict[str, float]:
    """Share of voxel anchors in coarse voxels occupied in the ground truth, per source, middle frame."""
    batch = frames_to_batch([frames], config.grid.spec().shape)
    with torch.no_grad():
        seq = net.forward_sequence(batch)
    t = 1
    occ = ((batch["labels"][0, t] >= 1) & (batch["labels"][0, t] != 255)).float()[None, None]
    truth = torch.nn.functional.max_pool3d(occ, config.head.coarse_downsample)[0, 0] > 0
    grid = scaled_grid(config.grid.spec(), config.head.coarse_downsample)
    budget = 2000
    shares = {"base": float(truth.float().mean())}
    _, index = voxel_anchors(seq.smoothed[0, t], grid, budget)
    shares["feature_norm"] = float(truth[tuple(index.T)].float().mean())
    mask, score = predicted_voxel_mask(seq.heads[t].coarse_logits[0])
    _, index = masked_voxel_anchors(mask, score, grid, budget)
    shares["predicted"] = float(truth[tuple(index.T)].float().mean())
    return shares


def test_anchors_of_occupied_voxels_land_on_surfaces_where_feature_norm_anchors_do_not(synthetic_dataset):
    """A generated frame: anchors from the head's occupied voxels (trained demo network) hit
    ground-truth-occupied voxels far more often than the top-norm voxels of the dense F~_IL."""
    payload = load_checkpoint(DEMO_CHECKPOINT)
    config = payload["config"]
    net = TACOcc(config)
    net.load_state_dict({k: v.float() for k, v in payload["model"].items()})
    net.eval()
    reader = NuScenesReader.open(synthetic_dataset, "v1.0-mini", config)
    tokens = scene_samples(reader.nusc, split_scenes(reader.nusc, "val")[0])[:3]
    shares = anchor_shares(net, config, [reader.frame(tok) for tok in tokens])
    # The dense volume's top-norm voxels are about as often occupied as any voxel.
    assert abs(shares["feature_norm"] - shares["base"]) < 0.1, shares
    assert shares["predicted"] > shares["feature_norm"] + 0.25, shares


def test_the_config_offers_the_papers_voxel_source_and_the_measured_best_only():
    from tacocc_core.config import RendererConfig

    assert RendererConfig().voxel_anchor_source == "predicted"
    assert RendererConfig(voxel_anchor_source="feature_norm").voxel_anchor_source == "feature_norm"
    for moved in ("lidar", "predicted_or_lidar"):  # measured in benchmarks/measure_renderer.py only
        with pytest.raises(ValueError, match="voxel_anchor_source"):
            RendererConfig(voxel_anchor_source=moved)
