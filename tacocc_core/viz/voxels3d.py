"""A 3D picture of the occupied voxels: shaded cubes in an orthographic view from behind and above.

Our own small renderer, because the library way is far too slow for a full grid: matplotlib's
`ax.voxels` builds polygons per face, one Python object per face of every voxel. Here every voxel is the same
cube seen from the same direction, so its picture is one sprite: a few pixels, each with the cube face
it shows and a depth offset, found once by casting a ray per sprite pixel against the cube. The sprite
is stamped at every voxel's projected centre and a depth test (`raster.nearest_per_pixel`) keeps the
nearest face per pixel. Voxels whose three visible faces all touch occupied neighbours cannot be seen
and are dropped first. Faces are shaded by their direction; outlines where the voxel or face changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import EMPTY, IGNORE, NUM_CLASSES, colorize
from tacocc_core.viz.bev import BEV_BACKGROUND, check_labels
from tacocc_core.viz.raster import nearest_per_pixel
from tacocc_core.viz.view_frame import check_forward, display_sizes, to_display

EGO_COLOUR = np.array([255, 255, 255], dtype=np.float32)
FACE_SHADE = np.array([0.62, 0.8, 1.0], dtype=np.float32)  # faces facing right/left, forward/back, up


@dataclass(frozen=True)
class View3D:
    """Where the viewer stands and how the picture is drawn.

    Args:
        azimuth_deg: viewer's angle around the up axis; 0 = straight behind the ego, positive = to its right.
        elevation_deg: viewer's angle above the ground plane, in [5, 85].
        width: picture width in pixels; the height follows from the grid and the angles.
        margin: empty pixels around the grid.
        outline: darken pixels where the voxel or the face changes (voxel edges).
        show_ignore: draw ignore (255) voxels too, in the ignore colour.
        ego: draw the ego vehicle as a white box on the ground under the frame's origin.
        ego_size_m: (length, width, height) of that box.
    """

    azimuth_deg: float = 20.0
    elevation_deg: float = 50.0
    width: int = 900
    margin: int = 10
    outline: bool = True
    show_ignore: bool = False
    ego: bool = True
    ego_size_m: tuple[float, float, float] = (4.5, 2.0, 1.6)

    def __post_init__(self) -> None:
        if not 5 <= self.elevation_deg <= 85:
            raise ValueError(f"View3D.elevation_deg must be in [5, 85], got {self.elevation_deg}")
        if self.width < 2 * self.margin + 16:
            raise ValueError(f"View3D.width must be at least 2 * margin + 16 pixels, got {self.width}")

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors in the display frame (right, forward, up): towards the viewer, screen right, screen up."""
        a, e = np.radians(self.azimuth_deg), np.radians(self.elevation_deg)
        to_viewer = np.array([np.sin(a) * np.cos(e), -np.cos(a) * np.cos(e), np.sin(e)])
        screen_right = np.cross(-to_viewer, [0.0, 0.0, 1.0])
        screen_right /= np.linalg.norm(screen_right)
        return to_viewer, screen_right, np.cross(screen_right, -to_viewer)


def cube_sprite(half: np.ndarray, view: View3D, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels an axis-aligned box covers when seen from `view`, relative to its centre's pixel.

    Args:
        half: (3,) half edge lengths along (right, forward, up), metres.
        scale: pixels per metre.

    Returns:
        offsets: (S, 2) int64 (d_row, d_col); face: (S,) int64 display axis of the face seen there;
        depth: (S,) float64 distance of that face point from the centre along the viewing direction.
    """
    to_viewer, s_right, s_up = view.basis()
    radius = int(np.ceil(np.linalg.norm(half) * scale)) + 1
    d_row, d_col = (a.ravel() for a in np.mgrid[-radius : radius + 1, -radius : radius + 1])
    start = np.outer(d_col / scale, s_right) - np.outer(d_row / scale, s_up)  # (S, 3) points on the screen plane
    direction = -to_viewer
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - start) / direction
        t2 = (half - start) / direction
    t_near = np.where(direction != 0, np.minimum(t1, t2), np.where(np.abs(start) <= half, -np.inf, np.inf))
    t_far = np.where(direction != 0, np.maximum(t1, t2), np.where(np.abs(start) <= half, np.inf, -np.inf))
    enter, leave = t_near.max(axis=1), t_far.min(axis=1)
    hit = enter <= leave
    offsets = np.stack([d_row[hit], d_col[hit]], axis=1).astype(np.int64)
    return offsets, np.argmax(t_near[hit], axis=1).astype(np.int64), enter[hit]


def visible_voxels(show: np.ndarray, view: View3D, forward: str) -> np.ndarray:
    """(X, Y, Z) bool voxels to draw -> (N, 3) int64 indices of those not hidden on every face the viewer sees."""
    f_axis, f_sign, r_axis, r_sign = check_forward(forward)
    to_viewer = view.basis()[0]
    steps = []  # (grid axis, index step) of the neighbour across each face the viewer sees
    for grid_axis, sign, component in (
        (r_axis, r_sign, to_viewer[0]),
        (f_axis, f_sign, to_viewer[1]),
        (2, 1, to_viewer[2]),
    ):
        if abs(component) > 1e-9:
            steps.append((grid_axis, int(sign * np.sign(component))))
    hidden = np.ones_like(show)
    for axis, step in steps:
        neighbour = np.zeros_like(show)
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        src[axis] = slice(1, None) if step > 0 else slice(None, -1)
        dst[axis] = slice(None, -1) if step > 0 else slice(1, None)
        neighbour[tuple(dst)] = show[tuple(src)]
        hidden &= neighbour
    return np.argwhere(show & ~hidden)


def ego_voxels(labels: np.ndarray, grid: GridSpec, forward: str, size_m: tuple[float, float, float]) -> np.ndarray:
    """(M, 3) int64 empty voxels forming the ego box, none if there is no road under it.

    The box covers the columns under its footprint at the frame's origin, from just above the highest
    occupied voxel there (the road) up to the box height.
    """
    centres = grid.centers()[:, :, 0, :2]
    shown = to_display(np.concatenate([centres, np.zeros(centres.shape[:2] + (1,))], axis=2).reshape(-1, 3), forward)
    length, width, height = size_m
    inside = ((np.abs(shown[:, 0]) <= width / 2) & (np.abs(shown[:, 1]) <= length / 2)).reshape(centres.shape[:2])
    occupied = (labels[inside] != EMPTY) & (labels[inside] < NUM_CLASSES)
    if not occupied.any():
        return np.zeros((0, 3), dtype=np.int64)
    ground = int(np.max(np.nonzero(occupied.any(axis=0))[0]))
    layers = np.arange(ground + 1, min(ground + 1 + int(round(height / grid.voxel_size[2])), labels.shape[2]))
    cols = np.argwhere(inside)
    out = np.array([(i, j, k) for i, j in cols.tolist() for k in layers.tolist()], dtype=np.int64).reshape(-1, 3)
    return out[labels[out[:, 0], out[:, 1], out[:, 2]] == EMPTY]


def render_voxels(labels: np.ndarray, grid: GridSpec, forward: str, view: View3D | None = None) -> np.ndarray:
    """(X, Y, Z) uint8 grid on `grid` -> (H, W, 3) uint8 picture of its voxels as shaded cubes, forward away."""
    view = view or View3D()
    labels = check_labels(labels)
    if labels.shape != tuple(grid.shape):
        raise ValueError(f"labels shape {labels.shape} differs from the grid's {tuple(grid.shape)}")
    _, s_right, s_up = view.basis()
    to_viewer = view.basis()[0]

    # Fit the whole grid's box into the picture width.
    corners = np.array(np.meshgrid(*zip(grid.lower, grid.upper, strict=True), indexing="ij")).reshape(3, -1).T
    corners = to_display(corners, forward)
    u, v = corners @ s_right, corners @ s_up
    scale = (view.width - 2 * view.margin) / (u.max() - u.min())
    height = int(np.ceil((v.max() - v.min()) * scale)) + 2 * view.margin
    image = np.empty((height, view.width, 3), dtype=np.uint8)
    image[:] = BEV_BACKGROUND

    show = (labels != EMPTY) & ((labels < NUM_CLASSES) | (view.show_ignore & (labels == IGNORE)))
    index = visible_voxels(show, view, forward)
    colours = colorize(labels[index[:, 0], index[:, 1], index[:, 2]]).astype(np.float32)
    if view.ego:
        ego = ego_voxels(labels, grid, forward, view.ego_size_m)
        index = np.concatenate([index, ego])
        colours = np.concatenate([colours, np.broadcast_to(EGO_COLOUR, (len(ego), 3))])
    if len(index) == 0:
        return image

    centres = to_display(grid.index_to_center(index), forward)
    col = np.round((centres @ s_right - u.min()) * scale + view.margin).astype(np.int64)
    row = np.round((v.max() - centres @ s_up) * scale + view.margin).astype(np.int64)
    depth = -(centres @ to_viewer)
    half = display_sizes(grid.voxel_size, forward) / 2 + 0.5 / scale  # half a pixel more: no cracks
    offsets, face, face_depth = cube_sprite(half, view, scale)

    rows = (row[:, None] + offsets[None, :, 0]).ravel()
    cols = (col[:, None] + offsets[None, :, 1]).ravel()
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < view.width)
    cand_voxel = np.repeat(np.arange(len(index)), len(face))[inside]
    cand_face = np.tile(face, len(index))[inside]
    cand_depth = (depth[:, None] + face_depth[None, :]).ravel()[inside]
    winners, pixels = nearest_per_pixel(rows[inside] * view.width + cols[inside], cand_depth)

    shaded = colours[cand_voxel[winners]] * FACE_SHADE[cand_face[winners]][:, None]
    flat = image.reshape(-1, 3)
    flat[pixels] = np.clip(shaded, 0, 255).round().astype(np.uint8)
    if view.outline:
        key = np.full(height * view.width, -1, dtype=np.int64)
        key[pixels] = cand_voxel[winners] * 3 + cand_face[winners]
        key = key.reshape(height, view.width)
        edge = np.zeros_like(key, dtype=bool)
        edge[:, :-1] |= key[:, :-1] != key[:, 1:]
        edge[:-1, :] |= key[:-1, :] != key[1:, :]
        edge &= key >= 0
        image[edge] = (image[edge] * 0.72).astype(np.uint8)
    return image
