"""Twin of `tacocc_core.viz.bev.top_view`: the top class of each column, column by column."""

from __future__ import annotations

import numpy as np

from tacocc_core.labels import IGNORE


def top_view_reference(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slow column-by-column twin of `top_view`, for tests."""
    nx, ny, nz = labels.shape
    top = np.zeros((nx, ny), dtype=np.uint8)
    index = np.full((nx, ny), -1, dtype=np.int64)
    for i in range(nx):
        for j in range(ny):
            for k in range(nz - 1, -1, -1):
                if 1 <= labels[i, j, k] <= 16:
                    top[i, j], index[i, j] = labels[i, j, k], k
                    break
            else:
                if (labels[i, j] == IGNORE).any():
                    top[i, j] = IGNORE
    return top, index
