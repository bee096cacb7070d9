import numpy as np
import pytest

from tacocc_core.config import load_preset
from tacocc_core.data.label_resample import block_vote, nearest, resample_labels
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import IGNORE, OCC3D_GRID, SURROUNDOCC_GRID, load_occ3d
from tacocc_core.reference.label_resample import block_vote_reference


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_vote_matches_reference(seed):
    src = GridSpec.from_ranges((-4.0, 4.0), (-4.0, 4.0), (-2.0, 2.0), 0.5)
    dst = GridSpec.from_ranges((-3.0, 3.0), (-2.0, 4.0), (-2.0, 2.0), 1.0)
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array([0, 0, 0, 4, 11, 16, IGNORE], np.uint8), size=src.shape)
    np.testing.assert_array_equal(block_vote(labels, src, dst), block_vote_reference(labels, src, dst))


def test_block_vote_rule():
    src = GridSpec.from_ranges((0.0, 2.0), (0.0, 1.0), (0.0, 1.0), 0.5)
    dst = GridSpec.from_ranges((0.0, 2.0), (0.0, 1.0), (0.0, 1.0), 1.0)
    labels = np.zeros(src.shape, np.uint8)
    labels[0, 0, 0] = 4  # one car voxel among empties -> car
    labels[2:, :, :] = IGNORE  # all ignore -> ignore
    out = block_vote(labels, src, dst)
    assert out[0, 0, 0] == 4 and out[1, 0, 0] == IGNORE


def test_surroundocc_to_tiny_grid_keeps_positions():
    tiny = load_preset("tiny").grid.spec()
    labels = np.zeros(SURROUNDOCC_GRID.shape, np.uint8)
    idx, _ = SURROUNDOCC_GRID.point_to_index(np.array([[10.2, -3.3, -1.6]]))
    labels[tuple(idx[0])] = 4
    out = resample_labels(labels, SURROUNDOCC_GRID, tiny)
    assert out.shape == tiny.shape == (48, 48, 8)
    j, _ = tiny.point_to_index(np.array([[10.2, -3.3, -1.6]]))
    assert out[tuple(j[0])] == 4 and (out == 4).sum() == 1


def test_real_occ3d_fixture_through_nearest(occ3d_labels_path):
    dense = load_occ3d(occ3d_labels_path)
    same = nearest(dense, OCC3D_GRID, OCC3D_GRID)
    np.testing.assert_array_equal(same, dense)
    tiny = load_preset("tiny").grid.spec()
    lift = np.eye(4)
    lift[2, 3] = 1.8  # LiDAR 1.8 m above the ego origin
    out = resample_labels(dense, OCC3D_GRID, tiny, dst2src=lift)
    assert out.shape == tiny.shape
    present = set(np.unique(out).tolist())
    assert {11, 0}.issubset(present)  # road and free space survive the resampling


def test_wrong_shape_rejected():
    with pytest.raises(ValueError, match="source grid"):
        resample_labels(np.zeros((3, 3, 3), np.uint8), SURROUNDOCC_GRID, OCC3D_GRID)
