"""`tacocc bench`: time the network's stages on synthetic nuScenes-like input (a benchmark, not a test).

The whole network runs frame after frame as a stream (`TACOcc.forward_step`), after `--warmup` untimed
frames; a `StageTimer` records each stage (CUDA synchronised at stage boundaries) and the total per frame.
The network is the one the Predictor runs: the weights of `--checkpoint` (the demo preset defaults to
`checkpoints/demo.pt`, whose head refines as few voxels as a trained network does; other presets to random
weights, whose untrained head refines most coarse voxels), rewritten by `fold_for_inference` unless
`--no-fold` times the network as it trains.

`--backend onnxruntime` times the network with its exported parts in onnxruntime (`OrtNetwork`), `both`
times eager PyTorch and onnxruntime frame after frame in one window (each its own stream); `--reference`
adds onnxruntime running the stock torchvision ResNet of the preset's depth on the preset's V x H x W
images, in the same window, and prints each backend's frame time as a ratio to it.
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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tacocc_core.config import PRESETS, load_preset

if TYPE_CHECKING:
    import torch

    from tacocc_core.config import ModelConfig

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
    p.add_argument(
        "--backend",
        type=_backends,
        default=("torch",),
        help="comma-separated, timed frame by frame in turn: torch (eager), onnxruntime (both exported parts), "
        "onnxruntime:image (the image part in onnxruntime, the ConvLSTM and head in PyTorch); both = "
        "torch,onnxruntime (default torch)",
    )
    p.add_argument(
        "--onnx-dir", default=None, help="with onnxruntime: a `tacocc export --onnx` folder (default: export in memory)"
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="also time onnxruntime running the stock torchvision ResNet on the preset's images; print the ratios",
    )
    p.add_argument(
        "--flops",
        action="store_true",
        help="also count each stage's FLOPs (and the stock ResNet's) and print the ratio's FLOP floor",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table as JSON here")
    p.set_defaults(run=run)


BACKENDS = ("torch", "onnxruntime", "onnxruntime:image")


def _backends(text: str) -> tuple[str, ...]:
    names = tuple(BACKENDS[:2] if text == "both" else (n.strip() for n in text.split(",")))
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected a list of {', '.join(BACKENDS)} (or both), got {text!r}")
    return names


STAGES = ("conditioning", "image_branch", "view_transform", "lidar_branch", "fuser", "temporal", "head")
ORT_STAGES = ("conditioning", "lidar_branch", "image_to_volume", "fuser", "warp", "volume_to_logits")


def time_alternating(
    networks: dict[str, tuple[object, tuple[str, ...], torch.dtype]],
    batch: dict,
    frames: int,
    warmup: int,
    device: torch.device,
    reference: Callable[[], object] | None = None,
) -> dict[str, tuple[dict[str, dict[str, float]], dict[str, float]]]:
    """Stage times of several networks in one window: frame i of each network in turn, then frame i + 1.

    Frames are streamed 0.1 s apart with the ego driving 1 m per frame, so that the temporal aggregator warps
    and carries its state as it does online; "total" is the wall time of the whole network per frame.

    Args:
        networks: name -> (network with `forward_step`, its stage names, autocast dtype).
        reference: a callable timed once per frame round beside them (reported as the stage "total").

    Returns:
        name -> ({stage: {p50_ms, p99_ms, mean_ms}} plus "total", {cpu_p50_ms: process CPU time per frame
        (all threads), refined_fraction: share of coarse voxels the head refined}); the reference under
        "reference" (its "total" row and cpu_p50_ms).
    """
    import time

    import numpy as np
    import torch

    from tacocc_core.timing import StageTimer

    names = list(networks)
    times: dict[str, dict[str, list[float]]] = {n: {s: [] for s in (*networks[n][1], "total")} for n in names}
    cpu_ms: dict[str, list[float]] = {n: [] for n in (*names, "reference")}
    refined: dict[str, list[float]] = {n: [] for n in names}
    ref_ms: list[float] = []
    states: dict[str, object] = {n: None for n in names}
    for i in range(warmup + frames):
        pose = np.eye(4)
        pose[1, 3] = float(i)
        for name in names:
            network, _, dtype = networks[name]
            autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
            timer = StageTimer(device)
            cpu_start = time.process_time()
            with torch.inference_mode(), autocast, timer.stage("total"):
                out = network.forward_step(  # type: ignore[attr-defined]  # a TACOcc or an OrtNetwork: both step so
                    batch, pose, i * 100_000_000, "bench", states[name], timer=timer
                )
            states[name] = out.temporal.state
            if i >= warmup:
                cpu_ms[name].append((time.process_time() - cpu_start) * 1e3)
                refined[name].append(float(out.head.refined.float().mean()))
                for stage in times[name]:
                    times[name][stage].append(timer.ms[stage])
        if reference is not None:
            cpu_start, start = time.process_time(), time.perf_counter()
            reference()
            if i >= warmup:
                ref_ms.append((time.perf_counter() - start) * 1e3)
                cpu_ms["reference"].append((time.process_time() - cpu_start) * 1e3)

    def table(rows: dict[str, list[float]]) -> dict[str, dict[str, float]]:
        return {
            stage: {
                "p50_ms": float(np.percentile(t, 50)),
                "p99_ms": float(np.percentile(t, 99)),
                "mean_ms": float(np.mean(t)),
            }
            for stage, t in rows.items()
        }

    result = {
        n: (
            table(times[n]),
            {"cpu_p50_ms": float(np.percentile(cpu_ms[n], 50)), "refined_fraction": float(np.mean(refined[n]))},
        )
        for n in names
    }
    if reference is not None:
        result["reference"] = (table({"total": ref_ms}), {"cpu_p50_ms": float(np.percentile(cpu_ms["reference"], 50))})
    return result


def stock_network_session(config: ModelConfig, threads: int) -> tuple[Callable[[], object], str]:
    """The stock torchvision ResNet of the preset's depth in onnxruntime (CPU) on V x 3 x H x W float images.

    Returns (a callable that runs it once, a line naming it). Exported as the parts are (opset 17).
    """
    import io

    import onnxruntime as ort
    import torch

    from tacocc_core.model.image_backbone import build_resnet

    v = len(config.cameras.names)
    h, w = config.cameras.image_size
    depth = config.image_backbone.depth
    net = build_resnet(depth, None).eval()
    images = torch.rand(v, 3, h, w)
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            net,
            (images,),
            buffer,  # type: ignore[arg-type]  # a file object is accepted as well as a path
            dynamo=False,
            opset_version=17,
            input_names=["images"],
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"images": images.numpy()}
    name = f"onnxruntime {ort.__version__}, torchvision ResNet-{depth} on {v} x {h}x{w}"
    return (lambda: session.run(None, feed)), name


def run(args: argparse.Namespace) -> int:
    import torch

    from tacocc_core.allocator import malloc_stats
    from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, CheckpointError, load_checkpoint
    from tacocc_core.config import demo_checkpoint_path
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
    networks: dict[str, tuple[object, tuple[str, ...], torch.dtype]] = {}
    ort_note = ""
    providers = {}
    for backend in args.backend:
        if backend == "torch":
            networks["torch"] = (model if args.no_fold else fold_for_inference(model), STAGES, dtype)
            continue
        from tacocc_core.deploy.onnx_files import PARTS, OnnxModelError
        from tacocc_core.deploy.ort_network import OrtNetwork

        ort_precision = dtype_name
        if device.type == "cpu" and dtype_name != "fp32":
            ort_precision, ort_note = "fp32", "onnxruntime runs fp32 on the CPU (no bf16 kernels)"
        image_only = backend == "onnxruntime:image"
        try:
            parts = PARTS[:1] if image_only else PARTS
            ort_network = OrtNetwork(model, args.onnx_dir, device, ort_precision, parts=parts)
        except (OnnxModelError, ValueError, ImportError) as err:
            print(f"tacocc bench: error: backend {backend}: {err}", file=sys.stderr)
            return 2
        ort_dtype = torch.float32 if ort_precision == "fp32" else dtype
        stages = (*ORT_STAGES[:4], "temporal", "head") if image_only else ORT_STAGES
        networks[backend] = (ort_network, stages, ort_dtype)
        providers[backend] = ort_network.providers
    reference, reference_name = (None, "")
    if args.reference:
        reference, reference_name = stock_network_session(config, torch.get_num_threads())
    batch = {k: v.to(device) for k, v in synthetic_step_batch(config, 1, args.points_per_sweep).items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    results = time_alternating(networks, batch, args.frames, args.warmup, device, reference)
    first = next(iter(networks))
    table, extra = results[first]
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
        "backend": first,
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
    if len(networks) > 1 or reference is not None:
        report["backends"] = {name: {"stages": results[name][0], **results[name][1]} for name in networks}
        for backend in providers:
            report["backends"][backend]["dtype"] = "fp32" if ort_note else dtype_name
            report["backends"][backend]["providers"] = providers[backend]
    if reference is not None:
        ref_table, ref_extra = results["reference"]
        report["reference"] = {"name": reference_name, "p50_ms": ref_table["total"]["p50_ms"], **ref_extra}
        report["ratios"] = {
            name: results[name][0]["total"]["p50_ms"] / ref_table["total"]["p50_ms"] for name in networks
        }
        report["cpu_ratios"] = {name: results[name][1]["cpu_p50_ms"] / ref_extra["cpu_p50_ms"] for name in networks}
    print(f"{config.name} on {report['device']} ({dtype_name}), {args.frames} frames, {report['points']} points")
    print(f"weights: {weights}, {'folded for inference' if report['folded'] else 'unfolded (--no-fold)'}")
    print(f"head refined {extra['refined_fraction']:.0%} of the coarse voxels; {report['torch_threads']} torch threads")
    if dtype_name == "bf16" and not report["bf16_native"]:
        print("bf16 is emulated on this device (no AVX-512 BF16 or AMX): expect it slower than fp32")
    if ort_note:
        print(ort_note)
    for name in networks:
        table, extra = results[name]
        if len(networks) > 1:
            print(f"backend {name} (frames alternating with the other backends)")
        print(f"{'stage':<18}{'p50 ms':>10}{'p99 ms':>10}")
        for stage, row in table.items():
            print(f"{stage:<18}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
        print(f"process CPU time per frame p50: {extra['cpu_p50_ms']:.2f} ms (all threads)")
    if reference is not None:
        ref = report["reference"]
        print(f"reference: {reference_name}: p50 {ref['p50_ms']:.2f} ms, CPU {ref['cpu_p50_ms']:.2f} ms")
        for name in networks:
            wall, cpu = report["ratios"][name], report["cpu_ratios"][name]
            print(f"ratio {name} / reference: {wall:.2f}x wall, {cpu:.2f}x CPU time")
    if args.flops:
        report["flops"] = _flop_report(model, batch, config, results)
        _print_flops(report["flops"], dtype_name)
    print(f"peak memory: {report['peak_memory_mb']:.0f} MiB ({report['peak_memory_kind']})")
    if malloc is not None:
        print(f"malloc: {report['malloc_mmapped_mb']:.0f} MiB in separately mmapped blocks at the end")
    if args.out is not None:
        _write_json(args.out, report)
    return 0


def _flop_report(model: torch.nn.Module, batch: dict, config: ModelConfig, results: dict) -> dict:
    """GFLOP per stage of the unfolded network, of the stock ResNet, the FLOP floor and the achieved rates."""
    from tacocc_core.flop_count import flop_floor, stage_flops, stock_resnet_flops

    stages = stage_flops(model, batch)  # type: ignore[arg-type]  # a TACOcc
    reference = stock_resnet_flops(config)
    total = sum(stages.values())
    report: dict = {
        "counter": "torch.utils.flop_counter (dense convolutions and matrix products; not spconv, KNN, elementwise)",
        "stages_gflop": {name: n / 1e9 for name, n in stages.items()},
        "total_gflop": total / 1e9,
        "reference_gflop": reference / 1e9,
        "flop_floor": flop_floor(total, reference),
    }
    if "torch" in results:  # achieved rates of the eager network's stages, from the timed window
        table = results["torch"][0]
        report["stages_gflop_per_s"] = {
            name: n / 1e9 / (table[name]["p50_ms"] / 1e3) for name, n in stages.items() if name in table
        }
    if "reference" in results:
        report["reference_gflop_per_s"] = reference / 1e9 / (results["reference"][0]["total"]["p50_ms"] / 1e3)
    return report


def _print_flops(flops: dict, dtype_name: str) -> None:
    rates = flops.get("stages_gflop_per_s", {})
    print(f"FLOPs, counted by {flops['counter']}:")
    print(f"{'stage':<18}{'GFLOP':>10}{'GFLOP/s':>10}")
    for name, gflop in flops["stages_gflop"].items():
        rate = f"{rates[name]:>10.1f}" if name in rates else f"{'':>10}"
        print(f"{name:<18}{gflop:>10.2f}{rate}")
    reference_rate = flops.get("reference_gflop_per_s")
    rate = f", {reference_rate:.1f} GFLOP/s" if reference_rate is not None else ""
    print(f"network {flops['total_gflop']:.2f} GFLOP, stock ResNet {flops['reference_gflop']:.2f} GFLOP{rate}")
    print(f"FLOP floor of the ratio to the stock ResNet: {flops['flop_floor']:.2f}x (both at the same FLOP rate)")
    if dtype_name != "fp32":
        print(
            f"this run is {dtype_name}: its convolutions may run faster than the fp32 stock network's, and its ratio "
            "fall below the floor"
        )


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
