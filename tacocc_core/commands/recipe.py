"""`tacocc recipe`: dry run of a training recipe, without a dataset.

Builds the recipe's network and prints the schedule a run on `--processes` processes gets (steps per
epoch, steps, warm-up, optimiser), the parameters, and the FLOPs of one frame's inference forward on a
synthetic frame at the recipe's resolution (torch's FlopCounterMode: the dense operations, convolutions and
matrix products, a multiply-add counted as two FLOPs; spconv's sparse convolutions and the KNN search are
not counted, so the number is a lower bound).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("recipe", help="dry run of a training recipe: steps, parameters, FLOPs per frame")
    p.add_argument("recipe", help="a recipe: config/recipe_*.yaml name (e.g. recipe_nuscenes_r50_256x704) or path")
    p.add_argument("--processes", type=int, default=8, help="processes (GPUs) of the run (default 8, the paper's)")
    p.add_argument("--no-flops", action="store_true", help="skip the forward that counts the FLOPs")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.set_defaults(run=run)


def count_flops(config: Any, model: Any) -> int:
    """FLOPs of one inference frame of `model` (eval mode) on a synthetic frame of `config`, CPU."""
    from tacocc_core.flop_count import frame_flops
    from tacocc_core.synthetic_batch import synthetic_step_batch

    return frame_flops(model, synthetic_step_batch(config, batch_size=1, seed=0))


def dry_run(recipe_name: str, processes: int, flops: bool = True) -> dict[str, Any]:
    """The recipe's numbers for a run on `processes` processes (see the module docstring)."""
    import torch

    from tacocc_core.config import load_preset, preset_path
    from tacocc_core.model.tacocc import TACOcc
    from tacocc_core.train.recipe import load_recipe

    path = preset_path(recipe_name)
    recipe = load_recipe(path)
    tc = recipe.train_config(processes, source=str(path))
    config = load_preset(recipe.model)
    torch.manual_seed(0)
    model = TACOcc(config).eval()
    out: dict[str, Any] = {
        "recipe": str(path),
        "model": config.name,
        "image_size": list(config.cameras.image_size),
        "backbone_depth": config.image_backbone.depth,
        "train_frames": recipe.train_frames,
        "processes": processes,
        "batch_size": tc.batch_size,
        "steps_per_epoch": recipe.steps_per_epoch(processes),
        "epochs": recipe.epochs,
        "steps": tc.steps,
        "warmup_steps": tc.warmup_steps,
        "optimiser": {"name": "AdamW", "lr": tc.lr, "weight_decay": tc.weight_decay, "schedule": "cosine"},
        "min_lr_ratio": tc.min_lr_ratio,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    if flops:
        out["flops_per_frame"] = count_flops(config, model)
    return out


def report(numbers: dict[str, Any]) -> str:
    """The dry run as lines of text."""
    h, w = numbers["image_size"]
    opt = numbers["optimiser"]
    lines = [
        f"recipe {numbers['recipe']}: model {numbers['model']} (ResNet-{numbers['backbone_depth']}, {h}x{w})",
        f"split: {numbers['train_frames']} keyframes; {numbers['processes']} processes x batch "
        f"{numbers['batch_size']} = {numbers['processes'] * numbers['batch_size']} sequences per step",
        f"steps per epoch: {numbers['steps_per_epoch']}; epochs: {numbers['epochs']}; steps: {numbers['steps']} "
        f"(warm-up {numbers['warmup_steps']}, cosine to {numbers['min_lr_ratio']} x lr)",
        f"optimiser: {opt['name']} lr {opt['lr']:g}, weight decay {opt['weight_decay']:g}",
        f"parameters: {numbers['parameters'] / 1e6:.2f} M ({numbers['trainable_parameters'] / 1e6:.2f} M trainable)",
    ]
    if "flops_per_frame" in numbers:
        lines.append(
            f"FLOPs per frame (inference, dense operations; sparse convolutions and KNN not counted): "
            f"{numbers['flops_per_frame'] / 1e9:.1f} GFLOP"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tacocc_core.train.eval_report import write_text_atomic

    if args.processes < 1:
        print(f"tacocc recipe: error: --processes must be >= 1, got {args.processes}", file=sys.stderr)
        return 2
    numbers = dry_run(args.recipe, args.processes, flops=not args.no_flops)
    print(report(numbers))
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(numbers, indent=2) + "\n")
    return 0
