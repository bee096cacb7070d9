"""tacocc_core.viz.voxels3d: cube sprites of the right size, the nearest cube in front, hidden voxels culled."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import IGNORE, IGNORE_COLOUR, OCC3D_GRID, PALETTE, load_occ3d
from tacocc_core.viz.bev import BEV_BACKGROUND
from tacocc_core.viz.view_frame import to_display
from tacocc_core.viz.voxels3d import FACE_SHADE, View3D, cube_sprite, render_voxels, visible_voxels

GRID = GridSpec.from_ranges((-8.0, 8.0), (-8.0, 8.0), (-2.0, 2.0), 1.0)  # 16 x 16 x 4
CAR, TREE = 4, 16
PLAIN = View3D(width=400, outline=False, ego=False)


@pytest.mark.parametrize("azimuth,elevation", [(0.0, 45.0), (20.0, 50.0), (-60.0, 30.0), (135.0, 80.0)])
def test_cube_sprite_area_is_the_projected_area_of_the_box(azimuth, elevation):
    view = View3D(azimuth_deg=azimuth, elevation_deg=elevation)
    half = np.array([0.5, 1.0, 0.75])
    scale = 40.0  # pixels per metre: a big sprite, so the pixel count approaches the area
    offsets, face, _ = cube_sprite(half, view, scale)
    to_viewer = view.basis()[0]
    face_areas = 4 * np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
    expected = np.sum(face_areas * np.abs(to_viewer)) * scale**2
    assert abs(len(offsets) - expected) / expected < 0.05
    for axis in range(3):  # each visible face covers its share of the sprite
        if abs(to_viewer[axis]) > 0.05:
            share = face_areas[axis] * abs(to_viewer[axis]) * scale**2
            assert abs((face == axis).sum() - share) / share < 0.1


def _projected_centre(view: View3D, grid: GridSpec, index, forward: str, image_width: int):
    """Pixel (row, col) of a voxel centre, computed here from the view's basis like the renderer."""
    _, s_right, s_up = view.basis()
    corners = np.array(np.meshgrid(*zip(grid.lower, grid.upper, strict=True), indexing="ij")).reshape(3, -1).T
    corners = to_display(corners, forward)
    u, v = corners @ s_right, corners @ s_up
    scale = (image_width - 2 * view.margin) / (u.max() - u.min())
    c = to_display(grid.index_to_center(np.array([index])), forward)[0]
    return int(round((v.max() - c @ s_up) * scale + view.margin)), int(
        round((c @ s_right - u.min()) * scale) + view.margin
    )


def test_a_single_voxel_shows_its_top_face_in_the_palette_colour_at_its_projection():
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[12, 3, 1] = CAR
    view = View3D(azimuth_deg=0.0, elevation_deg=80.0, width=400, outline=False, ego=False)
    image = render_voxels(labels, GRID, "+y", view)
    row, col = _projected_centre(view, GRID, (12, 3, 1), "+y", 400)
    # seen from nearly straight above, the centre pixel is on the top face (shade 1)
    np.testing.assert_array_equal(image[row - 1, col], PALETTE[CAR])
    car = np.all(image == PALETTE[CAR], axis=2)
    rows, cols = np.nonzero(car)
    assert abs(rows.mean() - row) < 6 and abs(cols.mean() - col) < 6
    others = ~np.all(image == BEV_BACKGROUND, axis=2)
    assert others.sum() < 800, "one voxel drew far too many pixels"


def test_the_nearer_voxel_hides_the_farther_one():
    # viewer behind (azimuth 0): a car just behind a tree in the same row, both at the same height
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[8, 8, 1] = CAR  # farther (larger y = more forward)
    labels[8, 7, 1] = TREE  # nearer
    view = View3D(azimuth_deg=0.0, elevation_deg=10.0, width=400, outline=False, ego=False)
    image = render_voxels(labels, GRID, "+y", view)
    row, col = _projected_centre(view, GRID, (8, 7, 1), "+y", 400)
    tree_front = np.round(PALETTE[TREE] * FACE_SHADE[1]).astype(np.uint8)
    np.testing.assert_array_equal(image[row, col], tree_front)
    # the car still shows above the tree (its top face), but nowhere inside the tree's face
    assert np.all(image == PALETTE[CAR], axis=2).any()


def test_hidden_voxels_are_culled():
    show = np.zeros((5, 5, 5), dtype=bool)
    show[1:4, 1:4, 1:4] = True
    kept = visible_voxels(show, View3D(azimuth_deg=20.0, elevation_deg=50.0), "+y")
    kept_set = set(map(tuple, kept.tolist()))
    assert (2, 2, 2) not in kept_set  # the centre of the block
    assert (3, 1, 3) in kept_set  # a corner on the top
    assert len(kept_set) < 27


def test_empty_and_all_ignore_grids_render():
    empty = render_voxels(np.zeros(GRID.shape, dtype=np.uint8), GRID, "+y", PLAIN)
    assert np.all(empty == BEV_BACKGROUND)
    ignore = np.full(GRID.shape, IGNORE, dtype=np.uint8)
    assert np.all(render_voxels(ignore, GRID, "+y", PLAIN) == BEV_BACKGROUND)
    shown = render_voxels(ignore, GRID, "+y", View3D(width=400, outline=False, ego=False, show_ignore=True))
    assert np.all(shown == IGNORE_COLOUR, axis=2).mean() > 0.2


def test_ego_box_stands_on_the_road_under_the_origin():
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[:, :, 0] = 11  # road everywhere on the lowest layer
    image = render_voxels(labels, GRID, "+y", View3D(width=400, ego=True))
    assert np.all(image == 255, axis=2).any(), "no white ego box"
    no_ego = render_voxels(labels, GRID, "+y", View3D(width=400, ego=False))
    assert not np.all(no_ego == 255, axis=2).any()


def test_bad_views_are_rejected():
    with pytest.raises(ValueError, match="elevation_deg"):
        View3D(elevation_deg=90.0)
    with pytest.raises(ValueError, match="shape"):
        render_voxels(np.zeros((3, 3, 3), dtype=np.uint8), GRID, "+y")


def test_real_occ3d_grid_renders_its_classes(occ3d_labels_path):
    labels = load_occ3d(occ3d_labels_path, use_camera_mask=False)
    image = render_voxels(labels, OCC3D_GRID, "+x", View3D(width=500))
    assert image.shape[1] == 500
    for cls in (4, 11, 16):  # car, driveable surface, vegetation: top faces in the exact palette colour
        assert np.all(image == PALETTE[cls], axis=2).sum() > 20, f"class {cls} missing"
