"""Twin of `tacocc_core.data.synthetic.raycast.cast`: every ray against the ground and every part, no culling.

Hit points, normals and classes come from the fast module's own `_finish`: the twin checks the culling.
"""

from __future__ import annotations

import numpy as np

from tacocc_core.data.synthetic.primitives import Parts, intersect_ground, intersect_part
from tacocc_core.data.synthetic.raycast import Hits, _finish


def cast_brute_force(origin: np.ndarray, dirs: np.ndarray, parts: Parts, max_range: float = 200.0) -> Hits:
    """Reference: every ray of (R, 3) unit `dirs` against the ground and every part, no culling."""
    origins = np.broadcast_to(origin, dirs.shape)
    t_best = intersect_ground(origins, dirs)
    t_best = np.where(t_best <= max_range, t_best, np.inf)
    part_best = np.where(np.isfinite(t_best), -1, -2).astype(np.int64)
    for i in range(len(parts)):
        t = intersect_part(i, parts, origins, dirs)
        closer = t < t_best
        t_best[closer], part_best[closer] = t[closer], i
    return _finish(origin, dirs, t_best, part_best, parts, max_range)
