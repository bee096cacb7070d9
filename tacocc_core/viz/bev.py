"""Bird's-eye view of a label grid: each column seen from above, in the class palette, forward up.

A column (i, j) shows its highest voxel that holds a class (1..16); a column holding only ignore voxels
(255) shows the ignore colour, and an empty column the background. Ignore voxels above a class do not
hide it: Occ3D marks everything outside the cameras' view as ignore, free space included, and the
class below is what a reader wants to see. With height shading the colour darkens towards the bottom of
the grid, so that a car on the road stands out from the road around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import EMPTY, IGNORE, NUM_CLASSES, colorize
from tacocc_core.viz.layout import classes_present, hstack, legend, titled, vstack
from tacocc_core.viz.view_frame import check_forward, orient_columns

BEV_BACKGROUND = np.array([12, 12, 16], dtype=np.uint8)
RING_COLOUR = np.array([48, 48, 60], dtype=np.uint8)
EGO_FILL = (255, 255, 255)
EGO_OUTLINE = (0, 0, 0)


@dataclass(frozen=True)
class BevStyle:
    """How a bird's-eye view is drawn.

    Args:
        pixels_per_voxel: each grid column becomes a square of this many pixels; None picks the most
            that keeps the picture within `target_size` (at least 1).
        target_size: the picture's longer side in pixels when `pixels_per_voxel` is None.
        height_shading: darken columns whose top voxel is low in the grid.
        shading_floor: brightness (0..1] of a top voxel in the lowest layer; the highest layer is 1.
        ring_spacing_m: distance rings around the ego every this many metres on empty ground (0: none).
        ego_length_m, ego_width_m: size of the ego arrow drawn at the frame's origin (0: none).
    """

    pixels_per_voxel: int | None = None
    target_size: int = 600
    height_shading: bool = True
    shading_floor: float = 0.6
    ring_spacing_m: float = 10.0
    ego_length_m: float = 4.5
    ego_width_m: float = 2.0

    def __post_init__(self) -> None:
        if self.pixels_per_voxel is not None and self.pixels_per_voxel < 1:
            raise ValueError(f"BevStyle.pixels_per_voxel must be >= 1, got {self.pixels_per_voxel}")
        if not 0 < self.shading_floor <= 1:
            raise ValueError(f"BevStyle.shading_floor must be in (0, 1], got {self.shading_floor}")

    def scale_for(self, shape: tuple[int, ...]) -> int:
        """Pixels per voxel for a grid of `shape` (X, Y, ...)."""
        return self.pixels_per_voxel or max(1, self.target_size // max(shape[0], shape[1]))


def check_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Raise ValueError unless `labels` is an (X, Y, Z) uint8 grid."""
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype != np.uint8 or 0 in labels.shape:
        raise ValueError(f"{name}: expected an (X, Y, Z) uint8 label grid, got shape {labels.shape} {labels.dtype}")
    return labels


def top_view(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) uint8 grid -> ((X, Y) uint8 top class, (X, Y) int64 z index of it, -1 where none).

    Top class: the highest voxel's class among 1..16; 255 where the column holds only ignore voxels;
    0 where it is empty.
    """
    labels = check_labels(labels)
    nz = labels.shape[2]
    semantic = (labels != EMPTY) & (labels < NUM_CLASSES)
    has = semantic.any(axis=2)
    k = nz - 1 - np.argmax(semantic[:, :, ::-1], axis=2)
    top = np.take_along_axis(labels, k[:, :, None], axis=2)[:, :, 0]
    top = np.where(has, top, np.where((labels == IGNORE).any(axis=2), IGNORE, EMPTY)).astype(np.uint8)
    return top, np.where(has, k, -1).astype(np.int64)


def bev_pixel(points_xy: np.ndarray, grid: GridSpec, forward: str, pixels_per_voxel: int) -> np.ndarray:
    """(N, 2) metric (x, y) in the grid's frame -> (N, 2) float64 (column, row) in `bev_image`'s picture."""
    f_axis, f_sign, r_axis, r_sign = check_forward(forward)
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    lower, size, shape = np.asarray(grid.lower[:2]), np.asarray(grid.voxel_size[:2]), np.asarray(grid.shape[:2])
    cells = (points_xy - lower) / size  # continuous voxel coordinates along x, y
    col = cells[:, r_axis] if r_sign > 0 else shape[r_axis] - cells[:, r_axis]
    row = shape[f_axis] - cells[:, f_axis] if f_sign > 0 else cells[:, f_axis]
    return np.stack([col, row], axis=1) * pixels_per_voxel


def bev_image(labels: np.ndarray, grid: GridSpec, forward: str, style: BevStyle | None = None) -> np.ndarray:
    """(X, Y, Z) uint8 grid on `grid` -> (H, W, 3) uint8 bird's-eye picture, forward up, ego at the origin."""
    style = style or BevStyle()
    labels = check_labels(labels)
    if labels.shape != tuple(grid.shape):
        raise ValueError(f"labels shape {labels.shape} differs from the grid's {tuple(grid.shape)}")
    top, k = top_view(labels)
    rgb = colorize(top).astype(np.float32)
    if style.height_shading and labels.shape[2] > 1:
        shade = style.shading_floor + (1 - style.shading_floor) * np.clip(k, 0, None) / (labels.shape[2] - 1)
        rgb = np.where((k >= 0)[:, :, None], rgb * shade[:, :, None], rgb)
    rgb[top == EMPTY] = BEV_BACKGROUND
    s = style.scale_for(labels.shape)
    image = np.repeat(np.repeat(orient_columns(rgb.round().astype(np.uint8), forward), s, axis=0), s, axis=1)
    empty = np.repeat(np.repeat(orient_columns(top == EMPTY, forward), s, axis=0), s, axis=1)
    origin = bev_pixel(np.zeros((1, 2)), grid, forward, s)[0]
    metres_per_pixel = np.asarray(grid.voxel_size[:2]).mean() / s
    if style.ring_spacing_m > 0:
        rows, cols = np.mgrid[: image.shape[0], : image.shape[1]] + 0.5
        dist = np.hypot(cols - origin[0], rows - origin[1]) * metres_per_pixel
        phase = np.abs(dist - style.ring_spacing_m * np.round(dist / style.ring_spacing_m))
        ring = (phase < 0.6 * metres_per_pixel) & (dist > style.ring_spacing_m / 2) & empty
        image[ring] = RING_COLOUR
    if style.ego_length_m > 0 and style.ego_width_m > 0:
        image = _draw_ego(image, origin, style.ego_length_m / metres_per_pixel, style.ego_width_m / metres_per_pixel)
    return image


def _draw_ego(image: np.ndarray, origin: np.ndarray, length_px: float, width_px: float) -> np.ndarray:
    """An arrow-shaped car outline centred on `origin` (column, row), pointing up the picture."""
    cx, cy = origin
    hl, hw = max(length_px, 6) / 2, max(width_px, 4) / 2
    nose = hl * 0.45
    polygon = [
        (cx - hw, cy + hl),
        (cx - hw, cy - hl + nose),
        (cx, cy - hl),
        (cx + hw, cy - hl + nose),
        (cx + hw, cy + hl),
    ]
    canvas = Image.fromarray(image)
    ImageDraw.Draw(canvas).polygon(polygon, fill=EGO_FILL, outline=EGO_OUTLINE)
    return np.asarray(canvas).copy()


def bev_figure(
    grids: list[np.ndarray],
    titles: list[str],
    grid: GridSpec,
    forward: str,
    style: BevStyle | None = None,
) -> np.ndarray:
    """Bird's-eye views side by side (e.g. prediction, ground truth), each titled, with one legend below.

    Args:
        grids: (X, Y, Z) uint8 label grids, all of the same shape, on `grid`.
        titles: one title per grid.
    """
    if len(grids) != len(titles) or not grids:
        raise ValueError(f"bev_figure: need one title per grid, got {len(grids)} grids and {len(titles)} titles")
    shapes = {np.asarray(g).shape for g in grids}
    if len(shapes) != 1:
        raise ValueError(f"bev_figure: grids differ in shape: {sorted(shapes)}")
    panels = [titled(bev_image(g, grid, forward, style), t) for g, t in zip(grids, titles, strict=True)]
    row = hstack(panels)
    return vstack([row, legend(classes_present(grids), row.shape[1])], gap=4)
