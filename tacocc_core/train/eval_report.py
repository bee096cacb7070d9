"""Evaluation report in the shape of the paper's tables, as Markdown and JSON, written atomically.

- per-class IoU (Table I): one row, columns IoU (geometry), mIoU, then the 16 classes, in percent;
- distance bands (Table VI): IoU and mIoU of the voxels within 25 / 50 / 100 m of the LiDAR;
- chosen-k histogram of the adaptive fuser (Table V): share of each k per modality and pyramid scale, and
  (when the evaluation counted them) per ground-truth class and size group of the query voxel;
- when scored, the plain LiDAR accumulation baseline (geometry IoU only) beside the network's IoU.
- flicker: share of static ground-truth voxels whose predicted label flips between consecutive frames;
- on Occ3D labels, the Occ3D challenge metric (17 classes with "others", inside mask_camera) beside the mean
  without "others". Every mIoU printed is named: this package's own is the mean over classes 1..16 with
  voxels labelled ignore (Occ3D's "others" among them) left out.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tacocc_core.labels import CLASS_NAMES, NUM_CLASSES
from tacocc_core.occ3d_metric import OFFICIAL_NAME
from tacocc_core.train.evaluation import EvalResult
from tacocc_core.train.k_by_class import k_tables_markdown

OWN_METRIC = "mean IoU of classes 1..16, voxels labelled ignore left out (not the Occ3D challenge metric)"


def _pct(value: float) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.2f}"


def report_dict(result: EvalResult, meta: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready report: `meta` (checkpoint, split, ...), frame counts, scores per region, k histogram."""
    k_share = {
        modality: {
            str(scale): {str(k): n / max(1, sum(counts.values())) for k, n in sorted(counts.items())}
            for scale, counts in sorted(scales.items())
        }
        for modality, scales in result.k_histogram.items()
    }
    counts = {
        modality: {str(s): {str(k): n for k, n in sorted(c.items())} for s, c in sorted(scales.items())}
        for modality, scales in result.k_histogram.items()
    }
    out = {
        **meta,
        "frames": result.frames,
        "unlabelled_frames": result.unlabelled,
        "scores": {name: s.to_dict() for name, s in result.evaluator.results().items()},
        "k_histogram": {"counts": counts, "share": k_share},
        "flicker": result.flicker.to_dict(),
    }
    if result.lidar_baseline is not None:
        out["lidar_accumulation_iou"] = {
            name: _finite(s.geometry_iou) for name, s in result.lidar_baseline.results().items()
        }
    out["miou_metric"] = OWN_METRIC
    if result.occ3d is not None:
        out["occ3d_challenge"] = result.occ3d.to_dict()
    if result.k_by_class is not None:
        out["k_by_class"] = {
            "candidates": list(result.k_by_class.candidates),
            "by_class": result.k_by_class.by_class(),
            "by_size_group": result.k_by_class.by_group(),
        }
    return out


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def report_markdown(result: EvalResult, meta: dict[str, Any]) -> str:
    """The three tables as Markdown, headed by `meta` (one `key: value` line each)."""
    scores = result.evaluator.results()
    lines = ["# Occupancy evaluation", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += [f"- frames scored: {result.frames} (run without labels: {result.unlabelled})"]
    lines += [f"- mIoU below: {OWN_METRIC}", ""]
    if result.occ3d is not None:
        o = result.occ3d
        lines += [f"## {OFFICIAL_NAME}", ""]
        lines += ["| mIoU (challenge, 17 classes) | mIoU without others (16) | IoU (occupied vs free) | frames |"]
        lines += ["|---:|---:|---:|---:|"]
        lines += [f"| {_pct(o.miou())} | {_pct(o.miou_without_others())} | {_pct(o.geometry_iou())} | {o.frames} |", ""]

    lines += ["## Per-class IoU (%, all voxels)", ""]
    header = ["IoU", "mIoU", *CLASS_NAMES[1:NUM_CLASSES]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---:|" * len(header))
    every = scores["all"]
    cells = [_pct(every.geometry_iou), _pct(every.miou), *(_pct(v) for v in every.class_iou[1:])]
    lines += ["| " + " | ".join(cells) + " |", ""]
    baseline = result.lidar_baseline.results() if result.lidar_baseline is not None else None
    if baseline is not None:
        lines += [
            f"LiDAR accumulation baseline (the network's input sweeps, voxelised; geometry only): IoU "
            f"{_pct(baseline['all'].geometry_iou)} against the network's {_pct(every.geometry_iou)}.",
            "",
        ]

    f = result.flicker
    lines += ["## Flicker (% of static ground-truth voxels whose predicted label flips, consecutive frames)", ""]
    lines += ["| all static voxels | static occupied voxels | frame pairs |", "|---:|---:|---:|"]
    lines += [f"| {_pct(f.flicker)} | {_pct(f.flicker_occupied)} | {f.pairs} |", ""]

    lines += ["## Distance bands (%)", ""]
    if baseline is None:
        lines += ["| range | IoU | mIoU | voxels |", "|---|---:|---:|---:|"]
    else:
        lines += ["| range | IoU | mIoU | LiDAR accumulation IoU | voxels |", "|---|---:|---:|---:|---:|"]
    for name, s in scores.items():
        label = "all" if name == "all" else name.removeprefix("within_").replace("m", " m")
        extra = "" if baseline is None else f" {_pct(baseline[name].geometry_iou)} |"
        lines.append(f"| {label} | {_pct(s.geometry_iou)} | {_pct(s.miou)} |{extra} {s.voxels} |")
    lines.append("")

    lines += ["## Chosen k of the adaptive fuser (% of queries)", ""]
    if not result.k_histogram:
        lines += ["(no fuser statistics: fuser mode without retrieval)", ""]
    else:
        ks = sorted({int(k) for scales in result.k_histogram.values() for c in scales.values() for k in c})
        lines.append("| modality | scale | " + " | ".join(f"k={k}" for k in ks) + " | queries |")
        lines.append("|---|---:|" + "---:|" * (len(ks) + 1))
        for modality, scales in result.k_histogram.items():
            for scale, c in sorted(scales.items()):
                n = sum(c.values())
                shares = " | ".join(_pct(c.get(k, 0) / n) if n else "-" for k in ks)
                lines.append(f"| {modality} | {scale} | {shares} | {n} |")
        lines.append("")
    if result.k_by_class is not None:
        lines += k_tables_markdown(result.k_by_class)
    return "\n".join(lines)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write through a temporary file in the same folder and rename: never a half-written report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a report is for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    out_dir: str | os.PathLike[str], stem: str, result: EvalResult, meta: dict[str, Any]
) -> tuple[Path, Path]:
    """Write `<out_dir>/<stem>.md` and `<out_dir>/<stem>.json`; returns both paths."""
    out_dir = Path(out_dir)
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    write_text_atomic(js, json.dumps(report_dict(result, meta), indent=2) + "\n")
    write_text_atomic(md, report_markdown(result, meta))
    return md, js
