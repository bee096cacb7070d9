"""The six camera images as one 2x3 mosaic, optionally with the occupied voxels projected into them.

Layout (the nuScenes viewers' order): front-left, front, front-right on top; back-left, back, back-right
below. The projected voxels are coloured dots, one per voxel centre, sized like the voxel at its depth
and drawn nearest-last, so the nearest surface is what shows; they are blended over the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from tacocc_core.frame import Frame
from tacocc_core.geometry import GridSpec, ImageTransform, in_image, invert_transform, project_points
from tacocc_core.labels import EMPTY, NUM_CLASSES, colorize
from tacocc_core.viz.bev import check_labels
from tacocc_core.viz.layout import font
from tacocc_core.viz.raster import disc_offsets, nearest_per_pixel

MOSAIC_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)
MAX_DOT_RADIUS = 4


def voxel_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    grid: GridSpec,
    cam2img: np.ndarray,
    cam2lidar: np.ndarray,
    alpha: float = 0.6,
) -> np.ndarray:
    """Blend the grid's occupied voxels (classes 1..16) into one camera image as palette-coloured dots.

    Args:
        image: (H, W, 3) uint8 RGB.
        labels: (X, Y, Z) uint8 grid on `grid`, in the LiDAR frame (the frame `cam2lidar` maps into).
        cam2img: (3, 3) intrinsics of `image` as given.
        cam2lidar: (4, 4) camera -> LiDAR.
        alpha: opacity of the dots.
    """
    labels = check_labels(labels)
    height, width = image.shape[:2]
    index = np.argwhere((labels != EMPTY) & (labels < NUM_CLASSES))
    uv, depth = project_points(grid.index_to_center(index), invert_transform(cam2lidar), cam2img)
    keep = in_image(uv, depth, width, height, min_depth=0.5)
    if not keep.any():
        return image.copy()
    uv, depth, index = uv[keep], depth[keep], index[keep]
    focal = float(np.asarray(cam2img)[0, 0])
    radius = np.clip(np.round(0.35 * focal * min(grid.voxel_size) / depth), 1, MAX_DOT_RADIUS).astype(np.int64)
    offsets = disc_offsets(MAX_DOT_RADIUS)
    within = (offsets[None, :, 0] ** 2 + offsets[None, :, 1] ** 2) <= (radius**2 + radius)[:, None]
    rows = (np.floor(uv[:, 1]).astype(np.int64)[:, None] + offsets[None, :, 0])[within]
    cols = (np.floor(uv[:, 0]).astype(np.int64)[:, None] + offsets[None, :, 1])[within]
    point = np.broadcast_to(np.arange(len(depth))[:, None], within.shape)[within]
    on = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    winners, pixels = nearest_per_pixel(rows[on] * width + cols[on], depth[point[on]])
    colour = colorize(labels[tuple(index[point[on][winners]].T)]).astype(np.float32)
    out = image.reshape(-1, 3).copy()
    out[pixels] = np.round((1 - alpha) * out[pixels] + alpha * colour).astype(np.uint8)
    return out.reshape(image.shape)


def camera_mosaic(
    images: Sequence[np.ndarray] | np.ndarray,
    names: Sequence[str],
    tile_width: int = 400,
    camera_valid: Sequence[bool] | np.ndarray | None = None,
    overlay: tuple[np.ndarray, GridSpec, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Six camera images -> one (2 * tile_h, 3 * tile_width, 3) uint8 mosaic with the camera names.

    Args:
        images: (V, H, W, 3) uint8 RGB in the order of `names`; all six nuScenes cameras must be there.
        names: camera channel names (`CAM_FRONT`, ...), one per image.
        tile_width: width of each tile; the height keeps the images' aspect ratio.
        camera_valid: (V,) False marks a missing camera (drawn dark, named "missing").
        overlay: (labels (X, Y, Z) uint8, grid, cam2img (V, 3, 3), cam2lidar (V, 4, 4)) to draw the voxels.
    """
    if len(images) != len(names):
        raise ValueError(f"camera_mosaic: {len(images)} images but {len(names)} names")
    wanted = [n for row in MOSAIC_LAYOUT for n in row]
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ValueError(f"camera_mosaic: cameras {missing} not among the names given {list(names)}")
    heights = {np.asarray(im).shape[:2] for im in images}
    if any(len(s) != 2 for s in heights) or len(heights) != 1:
        raise ValueError(f"camera_mosaic: images must share one (H, W), got {sorted(heights)}")
    (h, w) = heights.pop()
    tile_h = max(1, round(h * tile_width / w))
    resize = ImageTransform.resize_to((h, w), (tile_h, tile_width))
    mosaic = np.zeros((tile_h * len(MOSAIC_LAYOUT), tile_width * len(MOSAIC_LAYOUT[0]), 3), dtype=np.uint8)
    for r, row in enumerate(MOSAIC_LAYOUT):
        for c, name in enumerate(row):
            v = list(names).index(name)
            valid = camera_valid is None or bool(camera_valid[v])
            tile = cv2.resize(np.asarray(images[v]), (tile_width, tile_h), interpolation=cv2.INTER_AREA)
            if overlay is not None and valid:
                labels, grid, cam2img, cam2lidar = overlay
                tile = voxel_overlay(tile, labels, grid, resize.apply_to_intrinsics(cam2img[v]), cam2lidar[v])
            tile = _label_tile(tile, name if valid else f"{name} (missing)")
            mosaic[r * tile_h : (r + 1) * tile_h, c * tile_width : (c + 1) * tile_width] = tile
    return mosaic


def frame_mosaic(
    frame: Frame,
    names: Sequence[str],
    labels: np.ndarray | None = None,
    grid: GridSpec | None = None,
    tile_width: int = 400,
) -> np.ndarray:
    """A `Frame`'s images as a mosaic; with `labels` and `grid`, the voxels projected into them."""
    if labels is not None and grid is None:
        raise ValueError("frame_mosaic: labels given without their grid")
    overlay = None if labels is None or grid is None else (labels, grid, frame.cam2img, frame.cam2lidar)
    return camera_mosaic(frame.images, names, tile_width, frame.camera_valid, overlay)


def _label_tile(tile: np.ndarray, text: str, size: int = 14) -> np.ndarray:
    """Write `text` in white on a dark band at the tile's top-left corner."""
    canvas = Image.fromarray(tile)
    draw = ImageDraw.Draw(canvas, "RGBA")
    left, top, right, bottom = font(size).getbbox(text)
    draw.rectangle([0, 0, right + 10, bottom + 8], fill=(0, 0, 0, 150))
    draw.text((5, 4), text, fill=(255, 255, 255), font=font(size))
    return np.asarray(canvas)
