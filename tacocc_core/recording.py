"""What a bag replay through the occupancy node left behind: the grids it published and how it ran.

A recording directory holds
- `grids.npz`: `pred_<stamp_ns>` (X, Y, Z) uint8 class ids 0..16 on the model grid (0 = empty), one per grid
  the node published, and `gt_<stamp_ns>` (X, Y, Z) uint8 0..16, one per ground-truth grid the bag carried;
- `recording.json`: the run's facts (bag, model config, checkpoint, rate, expected and received LiDAR stamps,
  end-to-end latency per stamp in ms, the node's last diagnostics values, the node's exit code).

The directory is written to a temporary sibling and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tacocc_core.labels import NUM_CLASSES

GRIDS_FILE = "grids.npz"
FACTS_FILE = "recording.json"


class RecordingError(ValueError):
    """A recording directory that is missing, incomplete or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Recording:
    """Grids keyed by LiDAR stamp (ns) and the facts of the run that produced them."""

    bag: str
    model_config: str
    checkpoint: str
    rate: float
    expected_stamps: tuple[int, ...]
    received_stamps: tuple[int, ...]
    latency_ms: dict[int, float]
    diagnostics: dict[str, str]
    node_exit_code: int
    preds: dict[int, np.ndarray] = field(repr=False)
    gts: dict[int, np.ndarray] = field(repr=False)

    @property
    def dropped_stamps(self) -> tuple[int, ...]:
        """Expected stamps the node published no grid for."""
        received = set(self.received_stamps)
        return tuple(s for s in self.expected_stamps if s not in received)


def _check_grid(name: str, grid: np.ndarray, where: Path) -> np.ndarray:
    if grid.ndim != 3 or grid.dtype != np.uint8:
        raise RecordingError(f"{where}: {name} must be a (X, Y, Z) uint8 grid, got {grid.dtype} {grid.shape}")
    if grid.size and int(grid.max()) >= NUM_CLASSES:
        raise RecordingError(f"{where}: {name} holds class id {int(grid.max())} >= {NUM_CLASSES}")
    return grid


def save_recording(directory: str | os.PathLike[str], recording: Recording) -> Path:
    """Write `recording` as `directory` (replacing an existing one only once the new one is complete)."""
    target = Path(directory)
    if set(recording.preds) != set(recording.received_stamps):
        raise RecordingError(f"{target}: received_stamps do not match the predicted grids")
    arrays = {f"pred_{s}": _check_grid(f"pred_{s}", g, target) for s, g in recording.preds.items()}
    arrays.update({f"gt_{s}": _check_grid(f"gt_{s}", g, target) for s, g in recording.gts.items()})
    facts = {
        "bag": recording.bag,
        "model_config": recording.model_config,
        "checkpoint": recording.checkpoint,
        "rate": recording.rate,
        "expected_stamps": sorted(recording.expected_stamps),
        "received_stamps": sorted(recording.received_stamps),
        "latency_ms": {str(s): float(v) for s, v in sorted(recording.latency_ms.items())},
        "diagnostics": dict(recording.diagnostics),
        "node_exit_code": int(recording.node_exit_code),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        np.savez_compressed(staging / GRIDS_FILE, **arrays)
        (staging / FACTS_FILE).write_text(json.dumps(facts, indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_recording(directory: str | os.PathLike[str]) -> Recording:
    """Read a recording directory back; RecordingError naming the file when something is missing or wrong."""
    root = Path(directory)
    facts_path, grids_path = root / FACTS_FILE, root / GRIDS_FILE
    for path in (facts_path, grids_path):
        if not path.is_file():
            raise RecordingError(f"{path}: not found (is {root} a replay recording?)")
    try:
        facts = json.loads(facts_path.read_text())
        preds: dict[int, np.ndarray] = {}
        gts: dict[int, np.ndarray] = {}
        with np.load(grids_path) as npz:
            for name in npz.files:
                kind, _, stamp = name.partition("_")
                if kind not in ("pred", "gt") or not stamp.isdigit():
                    raise RecordingError(f"{grids_path}: unexpected array {name!r}")
                (preds if kind == "pred" else gts)[int(stamp)] = _check_grid(name, npz[name], grids_path)
        recording = Recording(
            bag=str(facts["bag"]),
            model_config=str(facts["model_config"]),
            checkpoint=str(facts["checkpoint"]),
            rate=float(facts["rate"]),
            expected_stamps=tuple(int(s) for s in facts["expected_stamps"]),
            received_stamps=tuple(int(s) for s in facts["received_stamps"]),
            latency_ms={int(s): float(v) for s, v in facts["latency_ms"].items()},
            diagnostics={str(k): str(v) for k, v in facts["diagnostics"].items()},
            node_exit_code=int(facts["node_exit_code"]),
            preds=preds,
            gts=gts,
        )
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, RecordingError):
            raise
        raise RecordingError(f"{root}: malformed recording: {type(err).__name__}: {err}") from err
    if set(preds) != set(recording.received_stamps):
        raise RecordingError(f"{grids_path}: pred_* arrays do not match received_stamps in {facts_path}")
    return recording
