"""Twin of `tacocc_core.data.label_resample.block_vote`: the vote block by block, in Python."""

from __future__ import annotations

import numpy as np

from tacocc_core.data.label_resample import block_factor
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import EMPTY, IGNORE, NUM_CLASSES


def block_vote_reference(labels: np.ndarray, src: GridSpec, dst: GridSpec) -> np.ndarray:
    """Slow, loop-by-loop version of `block_vote` for tests."""
    fs = block_factor(src, dst)
    if fs is None:
        raise ValueError(f"block_vote_reference: grid {dst} is not an aligned whole-factor coarsening of {src}")
    (fx, fy, fz), (sx, sy, sz) = fs
    out = np.zeros(dst.shape, dtype=np.uint8)
    for i, j, k in np.ndindex(*dst.shape):
        block = labels[
            sx + i * fx : sx + (i + 1) * fx, sy + j * fy : sy + (j + 1) * fy, sz + k * fz : sz + (k + 1) * fz
        ]
        values = [int(v) for v in block.ravel()]
        semantic = [v for v in values if 1 <= v < NUM_CLASSES]
        if semantic:
            out[i, j, k] = max(sorted(set(semantic)), key=semantic.count)
        else:
            out[i, j, k] = EMPTY if EMPTY in values else IGNORE
    return out
