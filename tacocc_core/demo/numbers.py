"""What the demo report states, computed from a replay `Recording` alone.

- scores: the project's metric (`OccupancyEvaluator`, as `tacocc eval`) over every received grid that has
  a ground-truth grid of the same stamp: geometry IoU, per-class IoU, mIoU over classes 1..16;
- the geometry IoU of the plain LiDAR accumulation baseline over the same frames, when given;
- end-to-end latency percentiles from `recording.latency_ms` (measured outside the node);
- the node's own figures from its last /diagnostics values: latency p50/p99, published, drops, k histogram;
- frames expected, received and dropped (expected stamps with no grid).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from tacocc_core.geometry import GridSpec
from tacocc_core.metrics import OccupancyEvaluator, OccupancyScores, confusion_matrix, scores_from_confusion
from tacocc_core.recording import Recording

K_KEY = re.compile(r"^k=(\d+)(?: count)?$")


@dataclass(frozen=True)
class FrameScore:
    """One received grid: its stamp, end-to-end latency (ms, NaN if unmeasured) and scores (None without GT)."""

    stamp_ns: int
    latency_ms: float
    scores: OccupancyScores | None


@dataclass(frozen=True)
class DemoNumbers:
    """Everything numeric in the report.

    Args:
        overall: scores over all scored frames (None when no received grid has a ground truth).
        frames: one entry per received stamp, ascending.
        latency_ms: {"p50", "p99"} end to end over the received frames (NaN when none was measured).
        node_latency_ms: {"p50", "p99"} the node's own, from its diagnostics (NaN when absent).
        node_published: grids the node says it published (None when its diagnostics lack the value).
        node_dropped: the node's `dropped <reason>` / `failed <reason>` counters.
        k_histogram: {k: count} of the adaptive fuser's choices over all queries of all published frames.
        lidar_baseline_iou: geometry IoU of the LiDAR accumulation (tacocc_core.lidar_baseline) over the
            scored frames, None when not given.
    """

    expected: int
    received: int
    dropped_stamps: tuple[int, ...]
    overall: OccupancyScores | None
    frames: tuple[FrameScore, ...]
    latency_ms: dict[str, float]
    node_latency_ms: dict[str, float]
    node_published: int | None
    node_dropped: dict[str, int]
    k_histogram: dict[int, int]
    lidar_baseline_iou: float | None = None

    @property
    def dropped(self) -> int:
        return len(self.dropped_stamps)

    @property
    def scored(self) -> int:
        return sum(f.scores is not None for f in self.frames)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (NaN as None)."""
        return {
            "frames_expected": self.expected,
            "frames_received": self.received,
            "frames_dropped": self.dropped,
            "dropped_stamps": list(self.dropped_stamps),
            "frames_scored": self.scored,
            "scores": None if self.overall is None else self.overall.to_dict(),
            "latency_end_to_end_ms": {k: _clean(v) for k, v in self.latency_ms.items()},
            "latency_node_ms": {k: _clean(v) for k, v in self.node_latency_ms.items()},
            "node_published": self.node_published,
            "node_dropped": dict(self.node_dropped),
            "k_histogram": {str(k): n for k, n in sorted(self.k_histogram.items())},
            "lidar_accumulation_iou": None if self.lidar_baseline_iou is None else _clean(self.lidar_baseline_iou),
            "per_frame": [
                {
                    "stamp_ns": f.stamp_ns,
                    "latency_ms": _clean(f.latency_ms),
                    "geometry_iou": None if f.scores is None else _clean(f.scores.geometry_iou),
                    "miou": None if f.scores is None else _clean(f.scores.miou),
                }
                for f in self.frames
            ],
        }


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def percentiles(values: list[float]) -> dict[str, float]:
    """{"p50", "p99"} of `values` (NaN for both when empty)."""
    if not values:
        return {"p50": math.nan, "p99": math.nan}
    array = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99))}


def _number(value: str | None) -> float:
    try:
        return float(value) if value is not None else math.nan
    except ValueError:  # "n/a" before the first published frame
        return math.nan


def k_histogram(diagnostics: dict[str, str]) -> dict[int, int]:
    """The node's `k=<k> count` diagnostics values -> {k: count}; ValueError naming a non-integer count."""
    out: dict[int, int] = {}
    for key, value in diagnostics.items():
        match = K_KEY.match(key)
        if match:
            try:
                out[int(match.group(1))] = int(value)
            except ValueError:
                raise ValueError(f"diagnostics {key!r}: expected an integer count, got {value!r}") from None
    return dict(sorted(out.items()))


def demo_numbers(recording: Recording, grid: GridSpec, baseline: dict[int, np.ndarray] | None = None) -> DemoNumbers:
    """Compute the report's numbers; ValueError when a grid is not on `grid`.

    `baseline`: the LiDAR accumulation grid (tacocc_core.lidar_baseline) per stamp; it is scored over the
    scored frames when it holds every one of them.
    """
    evaluator = OccupancyEvaluator(grid, bands_m=())
    lidar = OccupancyEvaluator(grid, bands_m=()) if baseline is not None else None
    frames = []
    for stamp in sorted(recording.received_stamps):
        pred, gt = recording.preds[stamp], recording.gts.get(stamp)
        if pred.shape != tuple(grid.shape):
            raise ValueError(f"recording grid pred_{stamp} has shape {pred.shape}, the model grid is {grid.shape}")
        scores = None
        if gt is not None:
            evaluator.update(pred, gt)
            scores = scores_from_confusion(confusion_matrix(pred, gt))
            if lidar is not None and baseline is not None:
                if stamp not in baseline:
                    raise ValueError(f"LiDAR accumulation baseline: no grid for stamp {stamp}")
                lidar.update(baseline[stamp], gt)
        frames.append(FrameScore(stamp, recording.latency_ms.get(stamp, math.nan), scores))
    diagnostics = recording.diagnostics
    published = diagnostics.get("published")
    return DemoNumbers(
        expected=len(recording.expected_stamps),
        received=len(recording.received_stamps),
        dropped_stamps=recording.dropped_stamps,
        overall=evaluator.results()["all"] if evaluator.frames else None,
        frames=tuple(frames),
        latency_ms=percentiles([f.latency_ms for f in frames if not math.isnan(f.latency_ms)]),
        node_latency_ms={q: _number(diagnostics.get(f"latency {q} (ms)")) for q in ("p50", "p99")},
        node_published=int(published) if published is not None and published.isdigit() else None,
        node_dropped={
            k: int(v) for k, v in diagnostics.items() if k.startswith(("dropped ", "failed ")) and v.isdigit()
        },
        k_histogram=k_histogram(diagnostics),
        lidar_baseline_iou=lidar.results()["all"].geometry_iou if lidar is not None and lidar.frames else None,
    )
