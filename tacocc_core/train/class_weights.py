"""Occupancy class weights from label frequencies, as the SurroundOcc family weights its cross-entropy.

SurroundOcc (and OpenOccupancy / Co-Occ after it) weight class c by w_c = 1 / ln(n_c + 0.001), n_c the
number of voxels of class c over the training labels, the empty class included. Rare classes get the
largest weights, but only logarithmically: a class 1000 times rarer than another weighs about 1.5-2 times
more, not 1000 times. A class with fewer than 2 counted voxels counts as absent (one voxel would weigh
1 / ln(1.001) = 1000) and gets the largest weight of the present ones (it cannot occur as a target in that
data, so its weight only matters on other data). Voxels labelled 255 are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tacocc_core.labels import IGNORE, NUM_CLASSES

LOG_OFFSET = 0.001  # SurroundOcc's


def count_labels(grids: Iterable[np.ndarray]) -> np.ndarray:
    """(17,) int64 voxel counts of classes 0..16 over label grids (any shape, uint8; 255 not counted).

    Raises:
        ValueError: a grid holds a label outside 0..16 and 255.
    """
    counts = np.zeros(NUM_CLASSES, np.int64)
    for i, grid in enumerate(grids):
        values = np.asarray(grid).reshape(-1)
        values = values[values != IGNORE].astype(np.int64)
        bad = (values < 0) | (values >= NUM_CLASSES)
        if bad.any():
            raise ValueError(f"count_labels: grid {i} holds labels outside 0..{NUM_CLASSES - 1} and {IGNORE}")
        counts += np.bincount(values, minlength=NUM_CLASSES)
    return counts


def inverse_log_weights(counts: np.ndarray) -> np.ndarray:
    """(17,) float64 w_c = 1 / ln(n_c + 0.001) from (17,) voxel counts; absent classes get the largest weight.

    Raises:
        ValueError: wrong length, negative counts, or fewer than one present class (nothing to weigh).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (NUM_CLASSES,) or (counts < 0).any():
        raise ValueError(f"inverse_log_weights: need {NUM_CLASSES} non-negative counts, got {counts.tolist()}")
    present = counts >= 2
    if not present.any():
        raise ValueError("inverse_log_weights: no class occurs at least twice in the counted labels")
    weights = np.zeros(NUM_CLASSES)
    weights[present] = 1.0 / np.log(counts[present] + LOG_OFFSET)
    weights[~present] = weights[present].max()
    return weights
