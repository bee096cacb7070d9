"""The demo's `report.md`: the numbers of `numbers.DemoNumbers` and the provenance as Markdown tables."""

from __future__ import annotations

import math

from tacocc_core.demo.numbers import DemoNumbers
from tacocc_core.demo.provenance import Provenance
from tacocc_core.labels import CLASS_NAMES, NUM_CLASSES


def _pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f}"


def report_markdown(numbers: DemoNumbers, provenance: Provenance, pictures: list[str], animation: str) -> str:
    """The report as Markdown. `pictures` and `animation` are paths relative to the report's folder."""
    n = numbers
    lines = ["# TACOcc demo: a bag replayed through the occupancy node", ""]
    lines += [
        f"The occupancy node and the bag player ran as separate processes over DDS; {n.received} of {n.expected} "
        f"frames came back ({n.dropped} dropped). Scores use the project's metric (as `tacocc eval`) over the "
        f"{n.scored} received frames with ground truth, on the model grid.",
        "",
        f"![animation]({animation})",
        "",
        "## Scores",
        "",
    ]
    if n.overall is None:
        lines += ["No received frame had a ground-truth grid: nothing to score.", ""]
    else:
        lines += [
            "| metric | % |",
            "|---|---|",
            f"| geometry IoU (occupied vs empty) | {_pct(n.overall.geometry_iou)} |",
            f"| mIoU (classes 1..16) | {_pct(n.overall.miou)} |",
        ]
        if n.lidar_baseline_iou is not None:
            lines.append(
                f"| geometry IoU of the LiDAR accumulation baseline (the node's input sweeps, voxelised) | "
                f"{_pct(n.lidar_baseline_iou)} |"
            )
        lines += [
            "",
            "Per class (`-`: the class occurs in neither prediction nor ground truth):",
            "",
            "| class | IoU % |",
            "|---|---|",
        ]
        lines += [f"| {CLASS_NAMES[c]} | {_pct(n.overall.class_iou[c])} |" for c in range(1, NUM_CLASSES)]
        lines.append("")
    lines += [
        "## Frames and latency",
        "",
        "| | value |",
        "|---|---|",
        f"| frames expected | {n.expected} |",
        f"| frames received | {n.received} |",
        f"| frames dropped | {n.dropped} |",
        f"| published (node's count) | {'-' if n.node_published is None else n.node_published} |",
        f"| latency end to end p50 / p99 (ms) | {_ms(n.latency_ms['p50'])} / {_ms(n.latency_ms['p99'])} |",
        f"| latency in the node p50 / p99 (ms) | {_ms(n.node_latency_ms['p50'])} / {_ms(n.node_latency_ms['p99'])} |",
    ]
    lines += [f"| node: {reason} | {count} |" for reason, count in sorted(n.node_dropped.items())]
    lines += [
        "",
        "End to end: arrival of the node's grid at the recorder minus arrival of the same LiDAR sweep there. "
        "In the node: its own /diagnostics figures. The node's counters (`published`, `node: ...`) run over "
        "the node's whole life, a warm-up pass of the bag included; a sweep that is not a frame (no camera "
        "image set within the slop: the generated cameras fire at keyframes only) counts as a `superseded` or "
        "`timeout` drop there. `frames dropped` counts only frames of the recorded pass that got no grid.",
        "",
        "## k histogram",
        "",
        "How many neighbours (k) the adaptive fuser chose per query, over all published frames (node's diagnostics):",
        "",
    ]
    total = sum(n.k_histogram.values())
    if total:
        lines += ["| k | queries | share % |", "|---|---|---|"]
        lines += [f"| {k} | {c} | {100 * c / total:.1f} |" for k, c in n.k_histogram.items()]
    else:
        lines.append("The node reported no k choices.")
    lines += ["", "## Frames", "", "| # | stamp (ns) | latency (ms) | geometry IoU % | mIoU % | picture |"]
    lines.append("|---|---|---|---|---|---|")
    for i, (f, picture) in enumerate(zip(n.frames, pictures, strict=True)):
        geo = "-" if f.scores is None else _pct(f.scores.geometry_iou)
        miou = "-" if f.scores is None else _pct(f.scores.miou)
        lines.append(f"| {i} | {f.stamp_ns} | {_ms(f.latency_ms)} | {geo} | {miou} | [{picture}]({picture}) |")
    if n.dropped_stamps:
        lines += ["", "Dropped stamps (ns): " + ", ".join(str(s) for s in n.dropped_stamps)]
    p = provenance
    lines += ["", "## What produced it", "", "| | |", "|---|---|"]
    if p.command:
        lines.append(f"| command | `{p.command}` |")
    lines += [
        f"| checkpoint | `{p.checkpoint}` |",
        f"| model config | `{p.model_config}` |",
        f"| bag | `{p.bag}` |",
        f"| replay rate | {p.rate:g} |",
    ]
    lines += [f"| data: {k} | {v} |" for k, v in p.data.items()]
    lines += [f"| {k} | {v} |" for k, v in p.machine.items()]
    return "\n".join(lines) + "\n"
