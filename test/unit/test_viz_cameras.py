"""tacocc_core.viz.cameras: the 2x3 layout by camera name, and voxels projected where the camera sees them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tacocc_core.config import NUSCENES_CAMERAS
from tacocc_core.geometry import GridSpec, invert_transform
from tacocc_core.labels import PALETTE
from tacocc_core.viz.cameras import MOSAIC_LAYOUT, camera_mosaic, voxel_overlay

CAR = 4


def _solid_images(h=90, w=160):
    """One flat grey level per camera, in the network's camera order."""
    return np.stack([np.full((h, w, 3), 20 * (v + 1), dtype=np.uint8) for v in range(len(NUSCENES_CAMERAS))])


def test_tiles_follow_the_nuscenes_layout():
    images = _solid_images()
    mosaic = camera_mosaic(images, NUSCENES_CAMERAS, tile_width=160)
    assert mosaic.shape == (180, 480, 3)
    for r, row in enumerate(MOSAIC_LAYOUT):
        for c, name in enumerate(row):
            level = 20 * (NUSCENES_CAMERAS.index(name) + 1)
            # bottom-right of each tile: away from the name label
            assert mosaic[r * 90 + 80, c * 160 + 150].tolist() == [level] * 3, name
    # the name label is drawn in the tile's top-left corner
    assert (mosaic[:20, :100] == 255).any()


def test_missing_camera_names_are_reported():
    names = list(NUSCENES_CAMERAS)
    names[0] = "CAM_TOP"
    with pytest.raises(ValueError, match="CAM_FRONT"):
        camera_mosaic(_solid_images(), names)
    with pytest.raises(ValueError, match="5 images but 6 names"):
        camera_mosaic(_solid_images()[:5], NUSCENES_CAMERAS)


def _real_front_camera(nuscenes_frame_dir):
    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    lidar2ego = np.array(calib["lidar"]["lidar2ego"])
    cam = calib["cameras"]["CAM_FRONT"]
    cam2lidar = invert_transform(lidar2ego) @ np.array(cam["cam2ego"])
    return np.array(cam["cam2img"]), cam2lidar


def test_a_voxel_ahead_shows_as_a_dot_at_its_projection(nuscenes_frame_dir):
    cam2img, cam2lidar = _real_front_camera(nuscenes_frame_dir)
    grid = GridSpec.from_ranges((-20.0, 20.0), (-20.0, 20.0), (-3.0, 3.0), 0.5)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    # 10 m in front of the LiDAR (nuScenes LIDAR_TOP: +y forward), at the LiDAR's height
    index = grid.point_to_index(np.array([[0.0, 10.0, 0.0]]))[0][0]
    labels[tuple(index)] = CAR
    centre = grid.index_to_center(index[None])[0]
    lidar2cam = invert_transform(cam2lidar)
    cam = lidar2cam[:3, :3] @ centre + lidar2cam[:3, 3]
    u, v = (cam2img @ cam)[:2] / cam[2]
    image = np.zeros((900, 1600, 3), dtype=np.uint8)
    out = voxel_overlay(image, labels, grid, cam2img, cam2lidar, alpha=1.0)
    np.testing.assert_array_equal(out[int(v), int(u)], PALETTE[CAR])
    coloured = np.argwhere(out.any(axis=2))
    assert len(coloured) < 100 and np.abs(coloured.mean(axis=0) - [v, u]).max() < 3
    # blending keeps part of the image
    half = voxel_overlay(np.full_like(image, 100), labels, grid, cam2img, cam2lidar, alpha=0.5)
    np.testing.assert_array_equal(half[int(v), int(u)], np.round(0.5 * 100 + 0.5 * PALETTE[CAR]).astype(np.uint8))


def test_a_voxel_behind_the_camera_draws_nothing(nuscenes_frame_dir):
    cam2img, cam2lidar = _real_front_camera(nuscenes_frame_dir)
    grid = GridSpec.from_ranges((-20.0, 20.0), (-20.0, 20.0), (-3.0, 3.0), 0.5)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    labels[tuple(grid.point_to_index(np.array([[0.0, -10.0, 0.0]]))[0][0])] = CAR
    image = np.zeros((900, 1600, 3), dtype=np.uint8)
    assert not voxel_overlay(image, labels, grid, cam2img, cam2lidar).any()


def test_mosaic_with_overlay_colours_the_front_tile_only(nuscenes_frame_dir):
    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    lidar2ego = np.array(calib["lidar"]["lidar2ego"])
    cam2img = np.stack([calib["cameras"][n]["cam2img"] for n in NUSCENES_CAMERAS])
    cam2lidar = np.stack(
        [invert_transform(lidar2ego) @ np.array(calib["cameras"][n]["cam2ego"]) for n in NUSCENES_CAMERAS]
    )
    grid = GridSpec.from_ranges((-20.0, 20.0), (-20.0, 20.0), (-3.0, 3.0), 0.5)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    labels[tuple(grid.point_to_index(np.array([[0.0, 15.0, -1.0]]))[0][0])] = CAR
    images = np.zeros((6, 900, 1600, 3), dtype=np.uint8)
    mosaic = camera_mosaic(images, NUSCENES_CAMERAS, tile_width=320, overlay=(labels, grid, cam2img, cam2lidar))
    plain = camera_mosaic(images, NUSCENES_CAMERAS, tile_width=320)
    tinted = np.argwhere(np.any(mosaic != plain, axis=2))
    assert len(tinted) > 0
    assert np.all((tinted[:, 1] >= 320) & (tinted[:, 1] < 640) & (tinted[:, 0] < 180)), "dot outside CAM_FRONT"
