"""Augmentations that keep images, points, extrinsics and labels consistent with each other.

- `flip_y`: mirror the world about the LiDAR x-z plane (y -> -y). Points and labels are mirrored;
  each image is mirrored left-right and its camera re-expressed so that projecting the mirrored points
  lands on the mirrored pixels: cam2lidar' = F @ cam2lidar @ Fc, cx' = W - cx, lidar2global' =
  lidar2global @ F (F = diag(1, -1, 1), Fc = diag(-1, 1, 1)). Apply the same flip to every frame of a
  sequence so that relative motions stay proper rotations.
- `jitter_colour`: brightness/contrast jitter of the images only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tacocc_core.frame import Frame
from tacocc_core.geometry import GridSpec

_F = np.diag([1.0, -1.0, 1.0, 1.0])
_FC = np.diag([-1.0, 1.0, 1.0, 1.0])


def flip_y(frame: Frame, grid: GridSpec) -> Frame:
    """The frame mirrored about y = 0 (see module docstring); the grid must be symmetric in y."""
    lo, hi = grid.lower[1], grid.upper[1]
    if not np.isclose(lo, -hi):
        raise ValueError(f"flip_y: grid y range ({lo}, {hi}) is not symmetric about 0")
    w = frame.images.shape[2]
    points = frame.points.copy()
    points[:, 1] *= -1
    cam2img = frame.cam2img.copy()
    cam2img[:, 0, 2] = w - cam2img[:, 0, 2]
    labels = None if frame.labels is None else np.ascontiguousarray(frame.labels[:, ::-1, :])
    return dataclasses.replace(
        frame,
        images=np.ascontiguousarray(frame.images[:, :, ::-1]),
        cam2img=cam2img,
        cam2lidar=_F @ frame.cam2lidar @ _FC,
        points=points,
        lidar2global=frame.lidar2global @ _F,
        labels=labels,
    )


def jitter_colour(frame: Frame, rng: np.random.Generator, strength: float = 0.2) -> Frame:
    """Per-camera random brightness (x[1-s, 1+s]) and contrast about the mean; geometry unchanged."""
    imgs = frame.images.astype(np.float32)
    v = len(imgs)
    gain = rng.uniform(1 - strength, 1 + strength, (v, 1, 1, 1))
    contrast = rng.uniform(1 - strength, 1 + strength, (v, 1, 1, 1))
    mean = imgs.mean(axis=(1, 2, 3), keepdims=True)
    out = np.clip((imgs - mean) * contrast + mean * gain, 0, 255).astype(np.uint8)
    return dataclasses.replace(frame, images=out)
