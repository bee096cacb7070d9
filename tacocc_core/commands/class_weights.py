"""`tacocc class-weights`: occupancy CE class weights from the label frequencies of a dataset split.

Prints the per-class voxel counts and the SurroundOcc-style weights 1 / ln(n_c + 0.001), and the YAML
line to put under `loss:` of a model config; `--out` also writes them as JSON (counts, weights, source).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("class-weights", help="CE class weights from a dataset's label frequencies")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (nuScenes layout)")
    p.add_argument("--config", default="tiny", help="preset or YAML whose grid the labels are read on")
    p.add_argument("--split", default="train", help="split whose labels are counted (default train)")
    p.add_argument("--version", default="v1.0-mini")
    p.add_argument("--labels", choices=("surroundocc", "occ3d"), default="surroundocc")
    p.add_argument("--out", type=Path, default=None, help="also write counts and weights to this JSON file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tacocc_core.config import load_config, preset_path
    from tacocc_core.data.nuscenes_reader import DataError, NuScenesReader, ReaderOptions
    from tacocc_core.labels import CLASS_NAMES
    from tacocc_core.train.class_weights import count_labels, inverse_log_weights
    from tacocc_core.train.eval_report import write_text_atomic
    from tacocc_core.train.evaluation import split_streams

    config = load_config(preset_path(args.config))
    try:
        reader = NuScenesReader.open(args.data, args.version, config, ReaderOptions(labels=args.labels))
        tokens = [tok for scene in split_streams(reader, args.split) for tok in scene]
        grids = [g for g in (reader.labels(tok) for tok in tokens) if g is not None]
        if not grids:
            raise DataError(f"split {args.split!r} of {args.data} has no labelled frame")
        counts = count_labels(grids)
        weights = inverse_log_weights(counts)
    except (DataError, ValueError) as err:
        print(f"tacocc class-weights: error: {err}", file=sys.stderr)
        return 2
    print(f"{len(grids)} labelled frames of split {args.split!r} of {args.data}, grid {config.grid.spec().shape}")
    print(f"{'class':<22} {'voxels':>12} {'weight':>8}")
    for name, n, w in zip(CLASS_NAMES, counts, weights, strict=True):
        print(f"{name:<22} {int(n):>12} {w:>8.4f}")
    print("class_weights: [" + ", ".join(f"{w:.4f}" for w in weights) + "]")
    if args.out is not None:
        payload = {
            "data": str(args.data),
            "split": args.split,
            "frames": len(grids),
            "grid": list(config.grid.spec().shape),
            "counts": {name: int(n) for name, n in zip(CLASS_NAMES, counts, strict=True)},
            "class_weights": [round(float(w), 6) for w in weights],
        }
        write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0
