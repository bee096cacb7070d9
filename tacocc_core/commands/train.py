"""`tacocc train`: train TACOcc on a nuScenes-layout dataset; the same command runs under torchrun (DDP)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tacocc_core.config import PRESETS, config_from_dict, config_to_dict, load_config, preset_path
from tacocc_core.train.overrides import apply_overrides, parse_override
from tacocc_core.train.train_config import load_train_config, train_config_from_dict, train_config_to_dict

if TYPE_CHECKING:
    from tacocc_core.train.loop import RunSpec

# The training loop (torch, the network, the data layer) is imported where it runs: every `tacocc`
# command builds this parser, and none of the others should wait for torch.


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train on a nuScenes-layout dataset (torchrun for several GPUs)")
    p.add_argument(
        "--config", default=None, help=f"model preset ({', '.join(PRESETS)}) or a .yaml path (default: the recipe's)"
    )
    p.add_argument("--data", required=True, type=Path, help="dataset folder (nuScenes layout)")
    p.add_argument("--version", default="v1.0-mini", help="nuScenes table version (default v1.0-mini)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoints, TensorBoard events")
    p.add_argument(
        "--train-config",
        default="train_tiny",
        help="training schedule: a name under config/ (default train_tiny) or a .yaml path",
    )
    p.add_argument(
        "--recipe",
        default=None,
        help="a recipe (config/recipe_*.yaml name or path): model and schedule, steps from the epochs, the split "
        "size, the processes (WORLD_SIZE) and the batch; replaces --train-config",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest.pt")
    p.add_argument("--label-fraction", type=float, default=None, help="keep labels of this fraction (0..1)")
    p.add_argument("--labels", choices=("surroundocc", "occ3d", "none"), default="surroundocc")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--stop-at-step", type=int, default=None, help="end this invocation after this step")
    p.add_argument("--val-max-frames", type=int, default=None, help="validation frames per rank (default all)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. model.fuser.mode=none or train.steps=300 (repeatable)",
    )
    p.set_defaults(run=run)


def build_spec(args: argparse.Namespace) -> RunSpec:
    """Configs from the arguments (preset, training YAML, --set, --label-fraction) -> RunSpec."""
    from tacocc_core.train.loop import RunSpec, with_label_fraction

    for text in args.overrides:
        parse_override(text)  # reject a malformed --set before reading anything
    recipe = None
    if args.recipe is not None:
        from tacocc_core.train.recipe import load_recipe, world_size

        recipe_path = preset_path(args.recipe)
        recipe = load_recipe(recipe_path)
    model = args.config if args.config is not None else (recipe.model if recipe is not None else None)
    if model is None:
        raise ValueError("give --config (a model preset or .yaml path) or --recipe")
    model_path = preset_path(model)
    model_dict = apply_overrides(config_to_dict(load_config(model_path)), "model", args.overrides)
    config = config_from_dict(model_dict, source=f"{model_path} with --set")
    if recipe is not None:
        train_path = recipe_path
        tc = recipe.train_config(world_size(), source=str(recipe_path))
    else:
        train_path = preset_path(args.train_config)  # a name looked up like the model presets, or a path
        tc = load_train_config(train_path)
    tc = train_config_from_dict(
        apply_overrides(train_config_to_dict(tc), "train", args.overrides), source=f"{train_path} with --set"
    )
    if args.label_fraction is not None:
        if not 0.0 <= args.label_fraction <= 1.0:
            raise ValueError(f"--label-fraction must be in [0, 1], got {args.label_fraction}")
        tc = with_label_fraction(tc, args.label_fraction)
    return RunSpec(
        config=config,
        train_config=tc,
        data_root=args.data,
        run_dir=args.out,
        version=args.version,
        resume=args.resume,
        train_split=args.train_split,
        val_split=args.val_split,
        labels=args.labels,
        device=args.device,
        stop_at_step=args.stop_at_step,
        val_max_frames=args.val_max_frames,
    )


def run(args: argparse.Namespace) -> int:
    from tacocc_core.checkpoint import CheckpointError
    from tacocc_core.data.nuscenes_reader import DataError
    from tacocc_core.train.loop import train
    from tacocc_core.train.nan_guard import NonFiniteLossError

    try:
        spec = build_spec(args)
        summary = train(spec)
    except (CheckpointError, DataError, NonFiniteLossError, ValueError) as err:
        print(f"tacocc train: error: {err}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        last = summary.validations[-1] if summary.validations else {}
        print(
            json.dumps(
                {
                    "step": summary.step,
                    "seconds": round(summary.seconds, 1),
                    "skipped_nonfinite": summary.skipped_nonfinite,
                    "skipped_unlearnable": summary.skipped_unlearnable,
                    "best_miou": summary.best_metric,
                    "last_validation": last,
                }
            )
        )
    return 0
