import numpy as np
import pytest
import torch

from tacocc_core.geometry import GridSpec
from tacocc_core.model.voxelize import VOXEL_FEATURES, voxelize
from tacocc_core.reference.voxelize import voxelize_reference

GRID = GridSpec.from_ranges((-4, 4), (-4, 4), (-2, 2), 1.0)


def reference(points: np.ndarray, batch: np.ndarray) -> dict[tuple, np.ndarray]:
    groups: dict[tuple, list] = {}
    for p, b in zip(points, batch, strict=True):
        if not np.isfinite(p).all():
            continue
        idx, inside = GRID.point_to_index(p[None, :3])
        if inside[0]:
            groups.setdefault((int(b), *idx[0].tolist()), []).append(p)
    out = {}
    for key, pts in groups.items():
        pts = np.array(pts, dtype=np.float64)
        centre_offset = (pts[:, :3] - np.asarray(GRID.lower)) / np.asarray(GRID.voxel_size) - np.array(key[1:]) - 0.5
        out[key] = np.concatenate([pts.mean(0), centre_offset.mean(0), [np.log1p(len(pts))]])
    return out


@pytest.mark.parametrize(("seed", "n"), [(0, 30), (1, 500)])
def test_matches_reference(seed, n):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-5, 5, (n, 5)).astype(np.float32)
    points[0, 1] = np.inf
    batch = rng.integers(0, 2, n)
    feats, coords = voxelize(torch.from_numpy(points), torch.from_numpy(batch), GRID)
    expected = reference(points, batch)
    assert feats.shape == (len(expected), VOXEL_FEATURES) and coords.dtype == torch.int32
    got = {tuple(c): f for c, f in zip(coords.tolist(), feats.numpy(), strict=True)}
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, atol=1e-5)
    assert coords.tolist() == sorted(coords.tolist())


def test_empty_and_bad_input():
    feats, coords = voxelize(torch.zeros(0, 5), torch.zeros(0, dtype=torch.int64), GRID)
    assert feats.shape == (0, VOXEL_FEATURES) and coords.shape == (0, 4)
    with pytest.raises(ValueError, match=r"expected \(P, 5\) points .* got \(3, 4\)"):
        voxelize(torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64), GRID)
    with pytest.raises(ValueError, match=r"points_batch \(2,\) does not match points \(3, 5\)"):
        voxelize(torch.zeros(3, 5), torch.zeros(2, dtype=torch.int64), GRID)


@pytest.mark.parametrize(("seed", "n", "batches"), [(0, 0, 1), (1, 1, 1), (2, 3000, 1), (3, 20000, 3)])
def test_flat_table_equals_the_unique_reference(seed, n, batches, monkeypatch):
    """`voxelize` (flat table of voxel keys) gives the reference's tensors bit for bit, also on bad points."""
    import tacocc_core.model.voxelize as voxelize_module

    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(n, 5, generator=gen) * torch.tensor([3.0, 3.0, 1.5, 40.0, 0.1])
    points[::97, 0] = float("nan")
    points[::89, 2] = float("inf")
    points[::83, 3] = float("nan")  # finite position, non-finite intensity
    points[::79, 0] = -1e30
    points[::73, 1] = 1e30
    batch = torch.randint(0, batches, (n,), generator=gen)
    grid = GridSpec.from_ranges((-4, 4), (-4, 4), (-2, 2), 0.25)
    fast = voxelize(points, batch, grid)
    reference = voxelize_reference(points, batch, grid)
    assert torch.equal(fast[0], reference[0]) and torch.equal(fast[1], reference[1])
    assert fast[1].dtype == reference[1].dtype == torch.int32
    monkeypatch.setattr(voxelize_module, "DENSE_KEY_CELLS", 10)  # too many cells: keys by torch.unique
    fallback = voxelize(points, batch, grid)
    assert torch.equal(fallback[0], reference[0]) and torch.equal(fallback[1], reference[1])
