"""tacocc_core.viz.bev: the right colour at the right pixel, forward up, on constructed and real grids."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import IGNORE, IGNORE_COLOUR, OCC3D_GRID, PALETTE, load_occ3d
from tacocc_core.reference.bev import top_view_reference
from tacocc_core.viz.bev import (
    BEV_BACKGROUND,
    EGO_FILL,
    BevStyle,
    bev_figure,
    bev_image,
    bev_pixel,
    top_view,
)

GRID = GridSpec.from_ranges((-10.0, 10.0), (-10.0, 10.0), (-2.0, 2.0), 1.0)  # 20 x 20 x 4
CAR, ROAD, TREE = 4, 11, 16
FLAT = BevStyle(pixels_per_voxel=4, height_shading=False, ring_spacing_m=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_view_matches_the_column_loop(seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array([0, 0, 0, 3, 11, 16, IGNORE], dtype=np.uint8), size=(9, 7, 5))
    top, k = top_view(labels)
    ref_top, ref_k = top_view_reference(labels)
    np.testing.assert_array_equal(top, ref_top)
    np.testing.assert_array_equal(k, ref_k)


def test_top_view_prefers_a_class_under_ignore_and_keeps_ignore_only_columns():
    labels = np.zeros((2, 1, 4), dtype=np.uint8)
    labels[0, 0] = [ROAD, 0, IGNORE, IGNORE]
    labels[1, 0] = [IGNORE, 0, 0, 0]
    top, k = top_view(labels)
    assert top[:, 0].tolist() == [ROAD, IGNORE]
    assert k[:, 0].tolist() == [0, -1]


@pytest.mark.parametrize(
    "forward,expected_col,expected_row",
    [
        # LiDAR frame (+y forward, +x right): x = 5.5 m right of centre, y = -6.5 m behind.
        ("+y", (5.5 + 10) / 1.0, (10 - -6.5) / 1.0),
        # ego frame (+x forward, +y left): x = 5.5 m ahead, y = -6.5 m is to the right.
        ("+x", (10 - -6.5) / 1.0, (10 - 5.5) / 1.0),
    ],
)
def test_a_car_voxel_shows_at_its_place_in_the_palette_colour(forward, expected_col, expected_row):
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[15, 3, 2] = CAR  # centre (5.5, -6.5, 0.5) m
    image = bev_image(labels, GRID, forward, FLAT)
    assert image.shape == (80, 80, 3)
    col, row = int(expected_col * 4), int(expected_row * 4)
    np.testing.assert_array_equal(image[row, col], PALETTE[CAR])
    np.testing.assert_allclose(bev_pixel(np.array([[5.5, -6.5]]), GRID, forward, 4)[0], [col, row])
    car_pixels = np.all(image == PALETTE[CAR], axis=2)
    assert car_pixels.sum() == 16, "one voxel is one 4x4 square"
    ego = bev_pixel(np.zeros((1, 2)), GRID, forward, 4)[0].astype(int)
    np.testing.assert_array_equal(image[ego[1], ego[0]], EGO_FILL)


def test_height_shading_darkens_low_voxels_only():
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[2, 2, 0] = ROAD
    labels[17, 17, 3] = ROAD
    style = BevStyle(pixels_per_voxel=1, height_shading=True, shading_floor=0.5, ring_spacing_m=0, ego_length_m=0)
    image = bev_image(labels, GRID, "+y", style)
    low = image[GRID.shape[1] - 1 - 2, 2]
    high = image[GRID.shape[1] - 1 - 17, 17]
    np.testing.assert_array_equal(high, PALETTE[ROAD])
    np.testing.assert_array_equal(low, np.round(PALETTE[ROAD] * 0.5).astype(np.uint8))


def test_empty_grid_renders_background_rings_and_ego():
    image = bev_image(np.zeros(GRID.shape, dtype=np.uint8), GRID, "+y", BevStyle(ring_spacing_m=5))
    colours = {tuple(c) for c in image.reshape(-1, 3).tolist()}
    assert tuple(BEV_BACKGROUND.tolist()) in colours
    assert EGO_FILL in colours
    assert len(colours) <= 4  # background, rings, ego fill and outline


def test_all_ignore_grid_renders_in_the_ignore_colour():
    image = bev_image(np.full(GRID.shape, IGNORE, dtype=np.uint8), GRID, "+y", FLAT)
    corner = image[0, 0]
    np.testing.assert_array_equal(corner, IGNORE_COLOUR)


def test_figure_has_prediction_and_ground_truth_side_by_side_with_a_legend():
    pred = np.zeros(GRID.shape, dtype=np.uint8)
    gt = np.zeros(GRID.shape, dtype=np.uint8)
    pred[15, 3, 2] = CAR
    gt[15, 3, 2] = TREE
    figure = bev_figure([pred, gt], ["prediction", "ground truth"], GRID, "+y", FLAT)
    half = figure.shape[1] // 2
    left, right = figure[:, :half], figure[:, half:]
    car = np.all(left == PALETTE[CAR], axis=2)
    tree = np.all(right == PALETTE[TREE], axis=2)
    assert car.sum() >= 16 and tree.sum() >= 16
    panels = figure[: figure.shape[0] - 60]  # above the legend
    assert not np.all(panels[:, half:] == PALETTE[CAR], axis=2).any(), "the prediction's car leaked into the GT half"
    # beyond the voxel's 4x4 square in its panel, each class has a swatch (13x13 inside its outline) in the legend
    assert np.all(figure == PALETTE[CAR], axis=2).sum() >= 16 + 12 * 12
    assert np.all(figure == PALETTE[TREE], axis=2).sum() >= 16 + 12 * 12


def test_figure_rejects_grids_of_different_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        bev_figure([np.zeros((4, 4, 2), np.uint8), np.zeros((4, 5, 2), np.uint8)], ["a", "b"], GRID, "+y")


def test_bad_labels_are_rejected_with_their_shape_and_dtype():
    with pytest.raises(ValueError, match="float32"):
        bev_image(np.zeros(GRID.shape, dtype=np.float32), GRID, "+y")
    with pytest.raises(ValueError, match=r"\(3, 3, 3\)"):
        bev_image(np.zeros((3, 3, 3), dtype=np.uint8), GRID, "+y")


def test_real_occ3d_grid_renders_its_road_in_front_of_the_ego(occ3d_labels_path):
    labels = load_occ3d(occ3d_labels_path, use_camera_mask=False)
    style = BevStyle(height_shading=False)
    image = bev_image(labels, OCC3D_GRID, "+x", style)
    assert image.shape == (600, 600, 3)
    # The keyframe sits on a road: driveable surface covers much of the picture, and cars are in it.
    road = np.all(image == PALETTE[ROAD], axis=2).mean()
    assert road > 0.1
    assert np.all(image == PALETTE[CAR], axis=2).any()
