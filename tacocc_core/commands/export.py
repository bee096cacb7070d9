"""`tacocc export`: a training checkpoint -> the weights-only file that the node and Predictor load.

With `--onnx`: a folder with the network's exportable parts as ONNX files for onnxruntime and TensorRT
(`tacocc_core.deploy.onnx_files`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="strip optimiser/scheduler/RNG state from a checkpoint (weights + config remain), or export ONNX parts",
    )
    p.add_argument("checkpoint", type=Path, help="a checkpoint written by `tacocc train` (latest.pt, best.pt)")
    p.add_argument(
        "--out", type=Path, required=True, help="where to write the weights-only checkpoint (with --onnx: a folder)"
    )
    p.add_argument("--half", action="store_true", help="store floating-point weights as float16 (half the size)")
    p.add_argument(
        "--onnx",
        action="store_true",
        help="write the image branch + view transform and the ConvLSTM cell + head as ONNX files (opset 17) "
        "with the weights for the PyTorch parts, into the folder --out",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tacocc_core.checkpoint import CheckpointError, export_weights

    if args.onnx:
        return _run_onnx(args)
    try:
        kept = export_weights(args.checkpoint, args.out, half=args.half)
    except CheckpointError as err:
        print(f"tacocc export: error: {err}", file=sys.stderr)
        return 2
    size_mb = args.out.stat().st_size / 1e6
    step = kept.get("step", "?")
    print(f"wrote {args.out} ({size_mb:.1f} MB, step {step}, from {args.checkpoint})")
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    from tacocc_core.checkpoint import CheckpointError, read_checkpoint

    if args.half:
        print("tacocc export: error: --half applies to checkpoints, not to --onnx", file=sys.stderr)
        return 2
    try:
        from tacocc_core.deploy.onnx_files import export_onnx
        from tacocc_core.model.tacocc import TACOcc

        payload = read_checkpoint(args.checkpoint)
        model = TACOcc(payload["config"])
        model.load_state_dict(payload["model"])
        manifest = export_onnx(model.eval(), args.out, source=str(args.checkpoint))
    except (CheckpointError, FileExistsError) as err:
        print(f"tacocc export: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(
            f"tacocc export: error: --onnx needs the onnx package ({err}); pip install 'tacocc_ros[onnx]'",
            file=sys.stderr,
        )
        return 2
    for part, entry in manifest["parts"].items():
        size_mb = (args.out / entry["file"]).stat().st_size / 1e6
        print(f"wrote {args.out / entry['file']} ({part}, {size_mb:.1f} MB)")
    print(
        f"network {manifest['preset']!r} (config sha256 {manifest['config_sha256'][:12]}), opset {manifest['opset']}, "
        f"from {args.checkpoint}; the LiDAR branch and the fuser run in PyTorch from {args.out / 'weights.pt'}"
    )
    return 0
