"""`tacocc export`: a training checkpoint -> the weights-only file that the node and Predictor load."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="strip optimiser/scheduler/RNG state from a checkpoint (weights + config remain)"
    )
    p.add_argument("checkpoint", type=Path, help="a checkpoint written by `tacocc train` (latest.pt, best.pt)")
    p.add_argument("--out", type=Path, required=True, help="where to write the weights-only checkpoint")
    p.add_argument("--half", action="store_true", help="store floating-point weights as float16 (half the size)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tacocc_core.checkpoint import CheckpointError, export_weights

    try:
        kept = export_weights(args.checkpoint, args.out, half=args.half)
    except CheckpointError as err:
        print(f"tacocc export: error: {err}", file=sys.stderr)
        return 2
    size_mb = args.out.stat().st_size / 1e6
    step = kept.get("step", "?")
    print(f"wrote {args.out} ({size_mb:.1f} MB, step {step}, from {args.checkpoint})")
    return 0
