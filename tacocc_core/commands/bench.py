"""`tacocc bench`: time the network's stages on synthetic nuScenes-like input (a benchmark, not a test).

The whole network runs frame after frame as a stream (`TACOcc.forward_step`), after `--warmup` untimed
frames; a `StageTimer` records each stage (CUDA synchronised at stage boundaries) and the total per frame.
The network is the one the Predictor runs: the weights of `--checkpoint` (the demo preset defaults to
`checkpoints/demo.pt`, whose head refines as few voxels as a trained network does; other presets to random
weights, whose untrained head refines most coarse voxels), rewritten by `fold_for_inference` unless
`--no-fold` times the network as it trains.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tacocc_core.config import PRESETS, load_preset

if TYPE_CHECKING:
    import torch

    from tacocc_core.model.tacocc import TACOcc

# torch and the model are imported inside the functions: every `tacocc` command builds this parser,
# and none of the others should pay for importing torch.


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="time the network stages on synthetic input")
    p.add_argument("--config", default="tiny", help=f"a preset name ({', '.join(PRESETS)}) or a .yaml path")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--frames", type=int, default=10, help="timed frames (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames first (default 2)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default=None, help="default: bf16 on cuda, fp32 on cpu")
    p.add_argument("--points-per-sweep", type=int, default=35000)
    p.add_argument("--pretrained", default=None, help="a local torchvision ResNet checkpoint (overrides the config)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="weights to time (a tacocc checkpoint of this config); default: checkpoints/demo.pt for the demo "
        "preset, random weights otherwise; 'none' forces random weights",
    )
    p.add_argument("--no-fold", action="store_true", help="time the network unfolded, as it trains")
    p.add_argument("--out", type=Path, default=None, help="also write the table as JSON here")
    p.set_defaults(run=run)


STAGES = ("conditioning", "image_branch", "view_transform", "lidar_branch", "fuser", "temporal", "head")


def time_stages(
    model: TACOcc, batch: dict, frames: int, warmup: int, device: torch.device, dtype: torch.dtype
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Stage times over `frames` timed frames of a stream, and the frame's CPU time and refined share.

    Returns ({stage: {p50_ms, p99_ms, mean_ms}} plus a "total" row, {cpu_p50_ms: process CPU time per frame
    (all threads), refined_fraction: share of coarse voxels the head refined}).
    Frames are streamed 0.1 s apart with the ego driving 1 m per frame, so that the temporal aggregator
    warps and carries its state as it does online. "total" is the wall time of the whole network per frame.
    """
    import time

    import numpy as np
    import torch

    from tacocc_core.timing import StageTimer

    times: dict[str, list[float]] = {name: [] for name in (*STAGES, "total")}
    cpu_ms, refined = [], []
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    state = None
    with torch.inference_mode(), autocast:
        for i in range(warmup + frames):
            pose = np.eye(4)
            pose[1, 3] = float(i)
            timer = StageTimer(device)
            cpu_start = time.process_time()
            with timer.stage("total"):
                out = model.forward_step(batch, pose, i * 100_000_000, "bench", state, timer=timer)
            state = out.temporal.state
            if i >= warmup:
                cpu_ms.append((time.process_time() - cpu_start) * 1e3)
                refined.append(float(out.head.refined.float().mean()))
                for name in times:
                    times[name].append(timer.ms[name])
    table = {
        name: {
            "p50_ms": float(np.percentile(t, 50)),
            "p99_ms": float(np.percentile(t, 99)),
            "mean_ms": float(np.mean(t)),
        }
        for name, t in times.items()
    }
    extra = {"cpu_p50_ms": float(np.percentile(cpu_ms, 50)), "refined_fraction": float(np.mean(refined))}
    return table, extra


def run(args: argparse.Namespace) -> int:
    import torch

    from tacocc_core.allocator import malloc_stats
    from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, CheckpointError, demo_checkpoint_path, load_checkpoint
    from tacocc_core.model.inference_folding import fold_for_inference
    from tacocc_core.model.tacocc import TACOcc
    from tacocc_core.predictor import native_bf16
    from tacocc_core.synthetic_batch import synthetic_step_batch

    if args.frames < 1 or args.warmup < 0:
        print(
            f"tacocc bench: error: --frames must be >= 1 and --warmup >= 0, got {args.frames}, {args.warmup}",
            file=sys.stderr,
        )
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("tacocc bench: error: --device cuda, but no CUDA device is available", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    config = load_preset(args.config)
    if args.pretrained:
        config = dataclasses.replace(
            config, image_backbone=dataclasses.replace(config.image_backbone, pretrained=args.pretrained)
        )
    checkpoint = args.checkpoint
    if checkpoint is None and config.name == "demo":
        checkpoint = str(demo_checkpoint_path())
    model = TACOcc(config)
    weights = "random initialisation (untrained)"
    if checkpoint and checkpoint != "none":
        try:
            model.load_state_dict(load_checkpoint(checkpoint, expected=config, ignore=INFERENCE_IRRELEVANT)["model"])
        except CheckpointError as err:
            print(f"tacocc bench: error: --checkpoint: {err}", file=sys.stderr)
            return 2
        weights = checkpoint
    model = model.to(device).eval()
    if not args.no_fold:
        model = fold_for_inference(model)
    batch = {k: v.to(device) for k, v in synthetic_step_batch(config, 1, args.points_per_sweep).items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    table, extra = time_stages(model, batch, args.frames, args.warmup, device, dtype)
    malloc = malloc_stats()
    report = {
        "config": config.name,
        "weights": weights,
        "folded": not args.no_fold,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": dtype_name,
        "frames": args.frames,
        "points": int(batch["points"].shape[0]),
        "torch_threads": torch.get_num_threads(),
        "bf16_native": native_bf16(device),
        "stages": table,
        **extra,
        "malloc_mmapped_mb": None if malloc is None else malloc.mmapped / 2**20,
        "peak_memory_mb": (
            torch.cuda.max_memory_allocated() / 2**20
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ),
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
    }
    print(f"{config.name} on {report['device']} ({dtype_name}), {args.frames} frames, {report['points']} points")
    print(f"weights: {weights}, {'folded for inference' if report['folded'] else 'unfolded (--no-fold)'}")
    print(f"head refined {extra['refined_fraction']:.0%} of the coarse voxels; {report['torch_threads']} torch threads")
    if dtype_name == "bf16" and not report["bf16_native"]:
        print("bf16 is emulated on this device (no AVX-512 BF16 or AMX): expect it slower than fp32")
    print(f"{'stage':<16}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in table.items():
        print(f"{name:<16}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    print(f"process CPU time per frame p50: {extra['cpu_p50_ms']:.2f} ms (all threads)")
    print(f"peak memory: {report['peak_memory_mb']:.0f} MiB ({report['peak_memory_kind']})")
    if malloc is not None:
        print(f"malloc: {report['malloc_mmapped_mb']:.0f} MiB in separately mmapped blocks at the end")
    if args.out is not None:
        _write_json(args.out, report)
    return 0


def _write_json(path: Path, data: dict) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
