"""`tacocc eval`: score a checkpoint on a split; per-class, distance-band and chosen-k tables as Markdown + JSON."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# The network, the data layer and torch are imported in `run`: every `tacocc` command builds this
# parser, and none of the others should wait for torch.


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="score a checkpoint on a split (Markdown + JSON tables)")
    p.add_argument("--checkpoint", required=True, type=Path, help="a checkpoint (latest.pt, best.pt, ...)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (nuScenes layout)")
    p.add_argument("--split", default="val", help="split name (default val)")
    p.add_argument("--version", default="v1.0-mini")
    p.add_argument("--labels", choices=("surroundocc", "occ3d"), default="surroundocc")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: beside the checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--max-frames", type=int, default=None, help="score only the first N frames (quick look)")
    p.add_argument("--random-weights", action="store_true", help="ignore the weights (the untrained baseline)")
    p.add_argument(
        "--intensity-scale",
        type=float,
        default=1.0,
        help="multiply the LiDAR intensity by this (0: no intensity; what the network takes from it)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from tacocc_core.checkpoint import CheckpointError
    from tacocc_core.data.nuscenes_reader import DataError, NuScenesReader, ReaderOptions
    from tacocc_core.predictor import Predictor, PredictorOptions
    from tacocc_core.train.eval_report import report_markdown, write_report
    from tacocc_core.train.evaluation import evaluate_streams, split_streams

    start = time.perf_counter()
    try:
        options = PredictorOptions(device=args.device, precision=args.precision, timings=False)
        predictor = Predictor.from_checkpoint(args.checkpoint, options=options)
        if args.random_weights:
            torch.manual_seed(0)
            predictor = Predictor(predictor.config, None, options)
        reader = NuScenesReader.open(
            args.data,
            args.version,
            predictor.config,
            ReaderOptions(labels=args.labels, intensity_scale=args.intensity_scale),
        )
        streams = split_streams(reader, args.split)
        result = evaluate_streams(predictor, reader, streams, max_frames=args.max_frames, baseline=True)
    except (CheckpointError, DataError, RuntimeError, ValueError) as err:
        print(f"tacocc eval: error: {err}", file=sys.stderr)
        return 2
    if result.frames == 0:
        print(f"tacocc eval: error: split {args.split!r} of {args.data} has no labelled frame", file=sys.stderr)
        return 2
    meta = {
        "checkpoint": str(args.checkpoint) + (" (random weights)" if args.random_weights else ""),
        "config": predictor.config.name,
        "data": str(args.data),
        "split": args.split,
        "intensity_scale": args.intensity_scale,
        "seconds": round(time.perf_counter() - start, 1),
    }
    out = args.out if args.out is not None else args.checkpoint.parent
    stem = f"eval_{args.split}" + ("_random" if args.random_weights else "")
    md, js = write_report(out, stem, result, meta)
    print(report_markdown(result, meta))
    print(f"wrote {md} and {js}")
    return 0
