"""Where the benchmarks find the real-data fixtures: one nuScenes frame (`nuscenes_frame/`) and one Occ3D grid.

`$TACOCC_FIXTURES` when set (as for the tests), else the `shared/fixtures` folder beside this checkout.
Every benchmark that reads them also takes `--fixtures DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def fixtures_root() -> Path:
    """The fixtures folder (it holds `nuscenes_frame/` and `occ3d/labels.npz`)."""
    return Path(os.environ.get("TACOCC_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))
