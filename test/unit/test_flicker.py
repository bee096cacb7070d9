import numpy as np
import pytest

from tacocc_core.flicker import FlickerCounts, FlickerMeter, pair_flicker
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import IGNORE

GRID = GridSpec(lower=(-4.0, -4.0, -1.0), voxel_size=(1.0, 1.0, 1.0), shape=(8, 8, 2))


def shift(dx: float) -> np.ndarray:
    """(4, 4) pose of a LiDAR dx metres along x in the world."""
    pose = np.eye(4)
    pose[0, 3] = dx
    return pose


def world_scene() -> np.ndarray:
    """Labels of a static world on a 20 x 8 x 2 strip of 1 m voxels, x from -4 m: a wall of class 15 at x = 1."""
    world = np.zeros((20, 8, 2), np.uint8)
    world[5, :, :] = 15
    world[9, 2:4, 0] = 4  # a car
    return world


def view(world: np.ndarray, dx: int) -> np.ndarray:
    """The grid seen by a LiDAR dx metres along x (dx whole voxels)."""
    return world[dx : dx + 8].copy()


def test_a_perfect_or_steady_prediction_has_no_flicker_and_ego_motion_is_compensated():
    world = world_scene()
    a, b = view(world, 0), view(world, 2)  # the ego moved 2 m: the same wall two voxels nearer
    counts = pair_flicker(a, a, b, b, np.linalg.inv(shift(0.0)) @ shift(2.0), GRID)
    # voxels of t whose centre moved into t-1's grid: x index 0..5 of t (6 of 8 columns), all 8 x 2.
    assert counts.static == 6 * 8 * 2 and counts.flipped == 0
    # the wall (x index 3 of t); the car (x index 7 of t) maps outside t-1's grid
    assert counts.static_occupied == 8 * 2 and counts.flicker == 0.0 and counts.pairs == 1
    # Without ego-motion compensation the same grids would look like flicker.
    wrong = pair_flicker(a, a, b, b, np.eye(4), GRID)
    assert wrong.static < counts.static


def test_flips_of_static_voxels_are_counted_and_moving_or_ignored_voxels_are_not():
    world = world_scene()
    a = view(world, 0)
    b = a.copy()
    b[9 - 4, 2:4, 0] = 15  # ground truth changed there (not static): left out
    pred_a, pred_b = a.copy(), b.copy()
    pred_b[5, 0, 0] = 0  # a wall voxel vanishes in the prediction: an occupied flip
    pred_b[0, 0, 0] = 3  # a free voxel turns into a car: a free-space flip
    target_b = b.copy()
    target_b[7, 7, 1] = IGNORE
    counts = pair_flicker(pred_a, a, pred_b, target_b, np.eye(4), GRID)
    static = 8 * 8 * 2 - 0 - 1  # the ignored voxel; the car voxels are not in this 8-wide view
    assert counts.static == static and counts.flipped == 2
    assert counts.static_occupied == 8 * 2 and counts.flipped_occupied == 1
    assert counts.flicker == pytest.approx(2 / static) and counts.flicker_occupied == pytest.approx(1 / 16)


def test_meter_chains_frames_and_restarts_at_resets_and_unlabelled_frames():
    world = world_scene()
    meter = FlickerMeter(GRID)
    for dx in (0, 1, 2):
        labels = view(world, dx)
        meter.update(labels, labels, shift(float(dx)))
    assert meter.counts.pairs == 2 and meter.counts.flipped == 0 and meter.counts.static > 0
    meter.reset()
    meter.update(view(world, 0), view(world, 0), shift(0.0))
    assert meter.counts.pairs == 2  # a new chain: no pair yet
    meter.update(view(world, 1), None, shift(1.0))
    noisy = view(world, 2)
    noisy[0, 0, 0] = 7
    meter.update(noisy, view(world, 2), shift(2.0))
    assert meter.counts.pairs == 2  # the unlabelled frame broke the chain
    total = FlickerCounts()
    total.add(meter.counts)
    total.add(FlickerCounts.from_array(meter.counts.as_array()))
    assert total.pairs == 4 and total.to_dict()["frame_pairs"] == 4
    assert np.isnan(FlickerCounts().flicker) and FlickerCounts().to_dict()["flicker"] is None


def test_bad_shapes_are_named():
    a = np.zeros(GRID.shape, np.uint8)
    with pytest.raises(ValueError, match=r"pred must be \(8, 8, 2\)"):
        pair_flicker(a, a, a[:4], a, np.eye(4), GRID)
    with pytest.raises(ValueError, match=r"curr2prev must be \(4, 4\)"):
        pair_flicker(a, a, a, a, np.eye(3), GRID)
