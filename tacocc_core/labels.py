"""The 17 occupancy classes in one place, and readers that turn label files into dense grids.

Common dense representation: a uint8 grid (nx, ny, nz) with 0 = empty, 1..16 = the semantic classes
below, 255 = ignore (unknown or unlabelled; excluded from losses and metrics).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tacocc_core.geometry import GridSpec

EMPTY = 0
IGNORE = 255
NUM_CLASSES = 17  # 0 empty + 16 semantic classes

CLASS_NAMES: tuple[str, ...] = (
    "empty",
    "barrier",
    "bicycle",
    "bus",
    "car",
    "construction_vehicle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "trailer",
    "truck",
    "driveable_surface",
    "other_flat",
    "sidewalk",
    "terrain",
    "manmade",
    "vegetation",
)

# (17, 3) uint8 RGB. Colours close to those the nuScenes-lidarseg and occupancy viewers use, so that
# pictures read the same way: cars blue, pedestrians red, road magenta, vegetation green.
PALETTE = np.array(
    [
        [0, 0, 0],  # empty
        [255, 120, 50],  # barrier
        [255, 192, 203],  # bicycle
        [255, 255, 0],  # bus
        [0, 150, 245],  # car
        [0, 255, 255],  # construction_vehicle
        [200, 180, 0],  # motorcycle
        [255, 0, 0],  # pedestrian
        [255, 240, 150],  # traffic_cone
        [135, 60, 0],  # trailer
        [160, 32, 240],  # truck
        [255, 0, 255],  # driveable_surface
        [139, 137, 137],  # other_flat
        [75, 0, 75],  # sidewalk
        [150, 240, 80],  # terrain
        [230, 230, 250],  # manmade
        [0, 175, 0],  # vegetation
    ],
    dtype=np.uint8,
)
IGNORE_COLOUR = np.array([40, 40, 40], dtype=np.uint8)

CLASS_IDS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# SurroundOcc grid (the nuScenes preset, docs/design/architecture.md) and the Occ3D-nuScenes grid (ego frame, 0.4 m).
SURROUNDOCC_GRID = GridSpec.from_ranges((-50.0, 50.0), (-50.0, 50.0), (-5.0, 3.0), 0.5)
OCC3D_GRID = GridSpec.from_ranges((-40.0, 40.0), (-40.0, 40.0), (-1.0, 5.4), 0.4)
OCC3D_FREE = 17
OCC3D_OTHERS = 0
NUMERIC_KINDS = "iuf"  # numpy dtype kinds a label array may have: signed, unsigned, floating


class LabelFileError(ValueError):
    """A label file that is missing, unreadable, or holds values outside the label definitions."""


def colorize(labels: np.ndarray) -> np.ndarray:
    """(...,) uint8 labels -> (..., 3) uint8 RGB; 255 (ignore) in dark grey."""
    labels = np.asarray(labels)
    out = PALETTE[np.minimum(labels, NUM_CLASSES - 1)]
    out[labels == IGNORE] = IGNORE_COLOUR
    return out


def surroundocc_to_dense(occupied: np.ndarray, shape: tuple[int, int, int], source: str = "<array>") -> np.ndarray:
    """SurroundOcc (N, 4) [x_idx, y_idx, z_idx, label] of occupied voxels -> dense uint8 grid.

    Voxels not listed are empty (0); label 0 (noise) becomes 255 (ignore).
    """
    occupied = np.asarray(occupied)
    if occupied.ndim != 2 or occupied.shape[1] != 4:
        raise LabelFileError(f"{source}: expected (N, 4) [x, y, z, label] rows, got shape {occupied.shape}")
    if occupied.dtype.kind not in NUMERIC_KINDS:
        raise LabelFileError(f"{source}: indices and labels must be numbers, got dtype {occupied.dtype}")
    if not np.issubdtype(occupied.dtype, np.integer):
        if not np.all(np.isfinite(occupied)) or np.any(occupied != np.round(occupied)):
            raise LabelFileError(f"{source}: indices and labels must be whole numbers, got dtype {occupied.dtype}")
        occupied = occupied.astype(np.int64)
    idx, labels = occupied[:, :3].astype(np.int64), occupied[:, 3].astype(np.int64)
    bad_idx = np.any((idx < 0) | (idx >= np.asarray(shape)), axis=1)
    if bad_idx.any():
        row = int(np.flatnonzero(bad_idx)[0])
        raise LabelFileError(
            f"{source}: {int(bad_idx.sum())} voxel indices outside the grid {tuple(shape)}, "
            f"first at row {row}: {idx[row].tolist()}"
        )
    bad_label = (labels < 0) | (labels >= NUM_CLASSES)
    if bad_label.any():
        raise LabelFileError(
            f"{source}: unknown labels {sorted(set(labels[bad_label].tolist()))[:10]}; allowed 0..{NUM_CLASSES - 1}"
        )
    dense = np.zeros(shape, dtype=np.uint8)
    values = np.where(labels == 0, IGNORE, labels).astype(np.uint8)
    dense[idx[:, 0], idx[:, 1], idx[:, 2]] = values
    return dense


def load_surroundocc(path: str | os.PathLike[str], shape: tuple[int, int, int] = SURROUNDOCC_GRID.shape) -> np.ndarray:
    """Read a SurroundOcc `.npy` label file -> dense uint8 grid of `shape`."""
    path = Path(path)
    try:
        occupied = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise LabelFileError(f"{path}: label file not found") from None
    except Exception as err:  # noqa: BLE001 - numpy raises many kinds (EOFError, SyntaxError, ...) on damaged files
        raise LabelFileError(f"{path}: not a readable .npy array ({type(err).__name__}: {err})") from None
    return surroundocc_to_dense(occupied, shape, source=str(path))


def dense_to_surroundocc(dense: np.ndarray) -> np.ndarray:
    """Dense uint8 grid -> SurroundOcc (N, 4) int64 rows of non-empty voxels (255 written as label 0)."""
    idx = np.argwhere(dense != EMPTY)
    labels = dense[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.int64)
    labels[labels == IGNORE] = 0
    return np.concatenate([idx, labels[:, None]], axis=1).astype(np.int64)


def occ3d_to_dense(semantics: np.ndarray, mask_camera: np.ndarray | None, source: str = "<array>") -> np.ndarray:
    """Occ3D semantics (0 others, 1..16 classes, 17 free) -> dense uint8 grid.

    17 (free) -> 0, 0 (others) -> 255, voxels outside `mask_camera` (when given) -> 255.
    """
    semantics = np.asarray(semantics)
    if semantics.ndim != 3:
        raise LabelFileError(f"{source}: 'semantics' must be a 3D grid, got shape {semantics.shape}")
    if semantics.dtype.kind not in NUMERIC_KINDS:
        raise LabelFileError(f"{source}: 'semantics' must hold numbers, got dtype {semantics.dtype}")
    unknown = np.setdiff1d(np.unique(semantics), np.arange(OCC3D_FREE + 1))
    if unknown.size:
        raise LabelFileError(f"{source}: unknown Occ3D labels {unknown.tolist()[:10]}; allowed 0..{OCC3D_FREE}")
    dense = semantics.astype(np.uint8).copy()
    dense[semantics == OCC3D_OTHERS] = IGNORE
    dense[semantics == OCC3D_FREE] = EMPTY
    if mask_camera is not None:
        mask_camera = np.asarray(mask_camera)
        if mask_camera.dtype.kind not in "b" + NUMERIC_KINDS:
            raise LabelFileError(f"{source}: 'mask_camera' must hold booleans or numbers, not {mask_camera.dtype}")
        if mask_camera.shape != semantics.shape:
            raise LabelFileError(
                f"{source}: 'mask_camera' shape {mask_camera.shape} differs from 'semantics' {semantics.shape}"
            )
        dense[mask_camera == 0] = IGNORE
    return dense


def load_occ3d(path: str | os.PathLike[str], use_camera_mask: bool = True) -> np.ndarray:
    """Read an Occ3D `labels.npz` -> dense uint8 grid on `OCC3D_GRID` (ego frame)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "semantics" not in data:
                raise LabelFileError(f"{path}: no 'semantics' array (found {sorted(data.files)})")
            semantics = data["semantics"]
            mask = None
            if use_camera_mask:
                if "mask_camera" not in data:
                    raise LabelFileError(f"{path}: no 'mask_camera' array (found {sorted(data.files)})")
                mask = data["mask_camera"]
    except FileNotFoundError:
        raise LabelFileError(f"{path}: label file not found") from None
    except LabelFileError:
        raise
    except Exception as err:  # noqa: BLE001 - zipfile and numpy raise many kinds on damaged archives
        raise LabelFileError(f"{path}: not a readable .npz archive ({type(err).__name__}: {err})") from None
    return occ3d_to_dense(semantics, mask, source=str(path))
