"""Read any label grid for pictures, and save predictions so that they can be read back.

Three formats, told apart by the file's content rather than its name:
- SurroundOcc `.npy`: (N, 4) [x, y, z, label] rows of occupied voxels, LiDAR frame; its grid is the
  SurroundOcc grid unless a `grid` is given (its shape sizes the dense grid).
- Occ3D `labels.npz` (a zip holding `semantics`): ego frame, always the Occ3D grid.
- a prediction: a dense (X, Y, Z) integer `.npy` with values 0..16 or 255, LiDAR frame; its grid is
  `grid` if given, else the model preset whose grid has that shape (`tacocc_core.config.PRESETS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tacocc_core.config import PRESETS, load_preset
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import (
    IGNORE,
    NUM_CLASSES,
    OCC3D_GRID,
    SURROUNDOCC_GRID,
    LabelFileError,
    load_occ3d,
    surroundocc_to_dense,
)
from tacocc_core.viz.image_io import atomic_path
from tacocc_core.viz.view_frame import EGO_FORWARD, LIDAR_FORWARD

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class LoadedGrid:
    """A label grid ready to draw.

    Args:
        labels: (X, Y, Z) uint8, 0 empty, 1..16 classes, 255 ignore.
        grid: where the voxels are (metres, in `frame`).
        forward: the grid axis pointing forward ("+y" for the LiDAR frame, "+x" for the ego frame).
        kind: the file format it was read from.
        frame: the coordinate frame, in words.
        path: the file.
    """

    labels: np.ndarray
    grid: GridSpec
    forward: str
    kind: Literal["surroundocc", "occ3d", "prediction"]
    frame: str
    path: Path


def grid_for_preset(name: str) -> GridSpec:
    """The output grid of a model preset (`tiny`, `nuscenes_r50_256x704`) or a config `.yaml` path."""
    return load_preset(name).grid.spec()


def preset_grid_for_shape(shape: tuple[int, ...]) -> GridSpec | None:
    """The grid of the first model preset whose output grid has `shape`, or None."""
    for name in PRESETS:
        spec = grid_for_preset(name)
        if tuple(spec.shape) == tuple(shape):
            return spec
    return None


def read_grid(path: str | os.PathLike[str], grid: GridSpec | None = None, use_camera_mask: bool = True) -> LoadedGrid:
    """Read a SurroundOcc `.npy`, an Occ3D `.npz` or a dense prediction `.npy` (see the module docstring).

    Args:
        grid: the grid of a SurroundOcc file or a prediction, when it is not the default one.
        use_camera_mask: Occ3D only: voxels outside `mask_camera` become ignore (255).

    Raises:
        LabelFileError: naming the file, when it is missing, of an unknown format or holds bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: grid file not found")
    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic.startswith(ZIP_MAGIC):
        labels = load_occ3d(path, use_camera_mask=use_camera_mask)
        return LoadedGrid(labels, OCC3D_GRID, EGO_FORWARD, "occ3d", "ego (Occ3D)", path)
    if magic != NPY_MAGIC:
        raise LabelFileError(f"{path}: neither a .npy array nor an .npz archive (starts with {magic!r})")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise LabelFileError(f"{path}: not a readable .npy array ({err})") from None
    if array.ndim == 2 and array.shape[1] == 4:
        spec = grid or SURROUNDOCC_GRID
        labels = surroundocc_to_dense(array, spec.shape, source=str(path))
        return LoadedGrid(labels, spec, LIDAR_FORWARD, "surroundocc", "LiDAR", path)
    if array.ndim == 3:
        labels = _check_dense(array, path)
        dense_spec = grid or preset_grid_for_shape(labels.shape)
        if dense_spec is None:
            raise LabelFileError(
                f"{path}: a dense grid of shape {labels.shape} matches no model preset's grid; "
                f"name its grid with a preset or config file ({', '.join(PRESETS)})"
            )
        if tuple(dense_spec.shape) != labels.shape:
            raise LabelFileError(
                f"{path}: grid of shape {labels.shape}, but the grid given has shape {dense_spec.shape}"
            )
        return LoadedGrid(labels, dense_spec, LIDAR_FORWARD, "prediction", "LiDAR", path)
    raise LabelFileError(
        f"{path}: expected SurroundOcc (N, 4) rows or a dense (X, Y, Z) grid, got an array of shape {array.shape}"
    )


def _check_dense(array: np.ndarray, path: Path) -> np.ndarray:
    """A dense integer grid with values 0..16 or 255 -> uint8, else LabelFileError naming the values."""
    if not np.issubdtype(array.dtype, np.integer):
        raise LabelFileError(f"{path}: a dense grid must hold integer labels, got dtype {array.dtype}")
    values = np.unique(array)
    bad = values[((values < 0) | (values >= NUM_CLASSES)) & (values != IGNORE)]
    if bad.size:
        raise LabelFileError(f"{path}: labels {bad.tolist()[:10]} are not 0..{NUM_CLASSES - 1} or {IGNORE}")
    return array.astype(np.uint8)


def save_prediction(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write an (X, Y, Z) uint8 prediction as a dense `.npy` at `path`, atomically. Returns the path."""
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype != np.uint8:
        raise ValueError(f"{path}: a prediction must be an (X, Y, Z) uint8 grid, got {labels.shape} {labels.dtype}")
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, labels, allow_pickle=False)
    return Path(path)
