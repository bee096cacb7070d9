"""One demo frame as one picture: the six cameras on top, prediction beside ground truth below.

Layout, top to bottom: a title line (frame index, stamp, scores); the 2x3 camera mosaic with the
predicted voxels projected into the images when the rig is known; bird's-eye views of the prediction and
the ground truth side by side, then their 3D views, with one legend (`tacocc_core.viz.figure`).
"""

from __future__ import annotations

import cv2
import numpy as np

from tacocc_core.demo.bag_images import CameraImages
from tacocc_core.geometry import GridSpec
from tacocc_core.rig.calibration_file import RigCalibration
from tacocc_core.viz.bev import BevStyle
from tacocc_core.viz.cameras import camera_mosaic
from tacocc_core.viz.figure import grid_figure
from tacocc_core.viz.layout import pad, titled, vstack
from tacocc_core.viz.voxels3d import View3D

LIDAR_FORWARD = "+y"  # nuScenes LIDAR_TOP: y points forward


def _overlay(cameras: CameraImages, pred: np.ndarray, grid: GridSpec, rig: RigCalibration | None):
    """(labels, grid, cam2img (V, 3, 3), cam2lidar (V, 4, 4)) for `camera_mosaic`, or None without a rig."""
    if rig is None or any(name not in rig.cameras or rig.cameras[name].image_size is None for name in cameras.names):
        return None
    h, w = cameras.images.shape[1:3]
    cam2img = []
    for name in cameras.names:
        calib = rig.cameras[name]
        assert calib.image_size is not None  # checked above
        scale = np.diag([w / calib.image_size[1], h / calib.image_size[0], 1.0])  # if decoded at another size
        cam2img.append(scale @ calib.cam2img)
    cam2lidar = np.stack([rig.cameras[n].cam2lidar for n in cameras.names])
    return pred, grid, np.stack(cam2img), cam2lidar


def frame_picture(
    title: str,
    pred: np.ndarray,
    gt: np.ndarray | None,
    grid: GridSpec,
    cameras: CameraImages | None = None,
    rig: RigCalibration | None = None,
    width: int = 1200,
) -> np.ndarray:
    """Draw one frame.

    Args:
        title: the line above everything.
        pred: (X, Y, Z) uint8 predicted labels on `grid`, LiDAR frame.
        gt: (X, Y, Z) uint8 ground truth on `grid`, or None (then only the prediction is drawn).
        cameras: the frame's six images; None leaves the mosaic out.
        rig: the bag's calibration; with it the predicted voxels are drawn into the camera images.
        width: target width of the mosaic and of the grid views, pixels.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    grids, titles = [pred], ["prediction"]
    if gt is not None:
        grids.append(gt)
        titles.append("ground truth")
    panel = max(200, (width - 12 * (len(grids) - 1)) // len(grids) - 16)
    views = grid_figure(
        grids,
        titles,
        grid,
        LIDAR_FORWARD,
        view="both",
        bev_style=BevStyle(target_size=panel),
        view3d=View3D(width=panel),
    )
    rows = []
    if cameras is not None:
        mosaic = camera_mosaic(
            cameras.images, cameras.names, tile_width=width // 3, overlay=_overlay(cameras, pred, grid, rig)
        )
        rows.append(titled(mosaic, "cameras" + (" with the predicted voxels" if rig is not None else "")))
    rows.append(views)
    return pad(titled(vstack(rows), title, size=20), 4)


def shrink(picture: np.ndarray, max_width: int) -> np.ndarray:
    """Scale a picture down (area averaging) to at most `max_width` pixels wide; narrower ones unchanged."""
    h, w = picture.shape[:2]
    if w <= max_width:
        return picture
    size = (max_width, max(1, round(h * max_width / w)))
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
