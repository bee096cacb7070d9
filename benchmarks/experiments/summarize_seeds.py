"""Mean +- std over seeds of the `tacocc eval` reports of several variants, as a Markdown table.

    python -m benchmarks.experiments.summarize_seeds [--per-seed] [--lidar] RUNS VARIANT [VARIANT ...]

reads RUNS/VARIANT/seed*/eval_val.json and prints, per variant: the seeds found, IoU, mIoU, small-object
mIoU (the mean IoU of barrier, bicycle, motorcycle, pedestrian and traffic_cone, classes with no ground
truth and no prediction left out) and flicker (share of static ground-truth voxels whose predicted label
flips between consecutive frames: all static voxels, then the occupied ones), all in percent. The std is
the sample standard deviation (n - 1); with one seed it is shown as "-". "checkpoints" names the files
scored (`step_NNNNNN.pt` snapshots by their step), so that a table of runs stopped early says where.
--per-seed adds one row per seed under each variant; --lidar adds a row of the plain LiDAR accumulation
baseline (its geometry IoU, from the first variant's reports: every variant is scored on the same frames).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

SMALL_CLASSES = ("barrier", "bicycle", "motorcycle", "pedestrian", "traffic_cone")
COLUMNS = ("IoU", "mIoU", "small-object mIoU", "flicker (static)", "flicker (static occupied)")


def scores(report: dict) -> dict[str, float | None]:
    every = report["scores"]["all"]
    small = [every["class_iou"].get(name) for name in SMALL_CLASSES]
    small = [v for v in small if v is not None]
    flicker = report.get("flicker", {})
    values = (
        every["geometry_iou"],
        every["miou"],
        statistics.mean(small) if small else None,
        flicker.get("flicker"),
        flicker.get("flicker_occupied"),
    )
    return dict(zip(COLUMNS, values, strict=True))


def checkpoint_name(report: dict) -> str:
    """`step_000300.pt` -> "step 300"; any other file by its name."""
    name = Path(str(report.get("checkpoint", "?"))).name
    found = re.fullmatch(r"step_0*(\d+)\.pt", name)
    return f"step {found.group(1)}" if found else name


def cell(values: list[float | None]) -> str:
    found = [100 * v for v in values if v is not None]
    if not found:
        return "-"
    if len(found) == 1:
        return f"{found[0]:.2f} +- -"
    return f"{statistics.mean(found):.2f} +- {statistics.stdev(found):.2f}"


def one(value: float | None) -> str:
    """One run's score in percent ("-" when absent)."""
    return "-" if value is None else f"{100 * value:.2f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="folder of the runs (RUNS/VARIANT/seed*/eval_val.json)")
    parser.add_argument("variants", nargs="+", help="variant folders, in the order of the table")
    parser.add_argument("--per-seed", action="store_true", help="a row per seed under each variant's mean")
    parser.add_argument("--lidar", action="store_true", help="a row of the LiDAR accumulation baseline's IoU")
    args = parser.parse_args(argv)
    runs, variants = args.runs, args.variants
    columns = COLUMNS
    print("| variant | seeds | checkpoints | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---:|" * len(columns))
    for variant in variants:
        reports = sorted((runs / variant).glob("seed*/eval_val.json"))
        if not reports:
            print(f"| {variant} | none | - | " + " | ".join("-" for _ in columns) + " |")
            continue
        loaded = [json.loads(path.read_text()) for path in reports]
        rows = [scores(report) for report in loaded]
        seeds = ",".join(path.parent.name.removeprefix("seed") for path in reports)
        names = ", ".join(sorted({checkpoint_name(report) for report in loaded}))
        cells = " | ".join(cell([r[c] for r in rows]) for c in columns)
        print(f"| {variant} | {seeds} | {names} | {cells} |")
        if args.per_seed:
            for path, report, row in zip(reports, loaded, rows, strict=True):
                seed = path.parent.name.removeprefix("seed")
                values = " | ".join(one(row[c]) for c in columns)
                print(f"| {variant} seed {seed} | {seed} | {checkpoint_name(report)} | {values} |")
    if args.lidar:
        reports = sorted((runs / variants[0]).glob("seed*/eval_val.json"))
        found = [json.loads(p.read_text()).get("lidar_accumulation_iou", {}).get("all") for p in reports]
        iou = one(found[0]) if found else "-"
        print("| LiDAR accumulation | - | - | " + " | ".join([iou, *("-" for _ in columns[1:])]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
