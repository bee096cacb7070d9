"""What the gradient benchmarks share: their arguments, the weights they measure, the training windows.

`fuser_gradients.py` and `renderer_gradients.py` both run the training objective forward and backward on a
few windows of a dataset, with the weights of a checkpoint (and its config) or the initial weights of a
preset and seed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import torch

from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, load_checkpoint
from tacocc_core.config import ModelConfig, load_preset
from tacocc_core.data.dataset import SequenceDataset, make_collate
from tacocc_core.data.nuscenes_reader import NuScenesReader


def add_arguments(parser: argparse.ArgumentParser, windows: int) -> None:
    """--config, --checkpoint, --data, --version, --split, --windows (default `windows`), --step, --seed."""
    parser.add_argument("--config", default="demo", help="preset (ignored with --checkpoint)")
    parser.add_argument("--checkpoint", default=None, help="trained weights (and their config)")
    parser.add_argument("--data", required=True, help="dataset folder (nuScenes layout)")
    parser.add_argument("--version", default="v1.0-mini")
    parser.add_argument("--split", default="train")
    parser.add_argument("--windows", type=int, default=windows, help="training windows averaged")
    parser.add_argument("--step", type=int, default=0, help="training step (Gumbel temperature and noise)")
    parser.add_argument("--seed", type=int, default=0, help="initial weights without --checkpoint")


def weights(args: argparse.Namespace) -> tuple[dict | None, ModelConfig]:
    """(the checkpoint's state dict, its config), or (None, the preset's config); seeds torch with --seed."""
    torch.manual_seed(args.seed)
    if not args.checkpoint:
        return None, load_preset(args.config)
    payload = load_checkpoint(args.checkpoint, ignore=INFERENCE_IRRELEVANT)
    return payload["model"], payload["config"]


def source(args: argparse.Namespace) -> str:
    """The weights measured, in words."""
    return args.checkpoint or f"initial weights of preset {args.config!r}, seed {args.seed}"


def training_windows(args: argparse.Namespace, config: ModelConfig) -> Iterator[dict]:
    """`--windows` batches of one window each, spread evenly over the split."""
    dataset = SequenceDataset(NuScenesReader.open(args.data, args.version, config), args.split)
    collate = make_collate(config)
    stride = max(1, len(dataset) // args.windows)
    for i in range(args.windows):
        yield collate([dataset[(i * stride) % len(dataset)]])
