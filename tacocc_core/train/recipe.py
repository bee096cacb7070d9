"""Training recipes: a model preset, a schedule in epochs of a named split, and the optimiser settings.

A recipe file (YAML) holds

    model: nuscenes_r50_256x704     # a model preset name or a .yaml path
    epochs: 15
    train_frames: 28130             # keyframes of the split trained on (nuScenes trainval "train")
    train: {...}                    # a training config (train_config.py) without `steps`

and the number of optimiser steps follows from the split, the processes and the batch:

    steps_per_epoch = ceil(train_frames / (processes * train.batch_size)),  steps = epochs * steps_per_epoch

so that one recipe gives the same number of epochs on 1, 8 or 64 processes. Each process draws
`batch_size` sequences of T frames per step; an epoch is counted in keyframes, each keyframe the last
frame of one sequence. `steps` in the train section is an error: it is derived.
"""

from __future__ import annotations

import math
import os
from typing import Any

from pydantic.dataclasses import dataclass

from tacocc_core.config import ConfigError, PositiveInt
from tacocc_core.strict_yaml import STRICT, read_yaml_mapping, validate_mapping
from tacocc_core.train.train_config import TrainConfig, train_config_from_dict

# Keyframes of the nuScenes trainval "train" split (700 scenes), the split the paper trains on.
NUSCENES_TRAIN_KEYFRAMES = 28130


@dataclass(config=STRICT)
class Recipe:
    """A model preset and a schedule in epochs.

    Args:
        model: model preset name (config/) or a model config .yaml path.
        epochs: passes over the training split.
        train_frames: keyframes in the training split (one per training sequence).
        train: training config keys (train_config.TrainConfig) except `steps`.
    """

    model: str
    epochs: PositiveInt
    train_frames: PositiveInt
    train: dict[str, Any]

    def __post_init__(self) -> None:
        if "steps" in self.train:
            raise ValueError("train.steps is derived from epochs, train_frames, processes and batch_size; remove it")

    def steps_per_epoch(self, processes: int) -> int:
        """Optimiser steps per pass over the split with `processes` processes of `train.batch_size` each."""
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        batch = int(self.train.get("batch_size", TrainConfig.__dataclass_fields__["batch_size"].default))
        return math.ceil(self.train_frames / (processes * batch))

    def train_config(self, processes: int, source: str = "<recipe>") -> TrainConfig:
        """The training config of a run on `processes` processes: the train section with the derived steps."""
        steps = self.epochs * self.steps_per_epoch(processes)
        return train_config_from_dict({**self.train, "steps": steps}, source=f"{source} ({processes} processes)")


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file; the train section is checked against a one-process run too.

    Raises:
        ConfigError: unreadable file, unknown or missing keys, or a train section that does not validate.
    """
    recipe = validate_mapping(Recipe, read_yaml_mapping(path, "recipe"), str(path), what="recipe")
    try:
        recipe.train_config(1, source=str(path))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return recipe


def world_size() -> int:
    """Processes of this run: torchrun's WORLD_SIZE, 1 without it."""
    return int(os.environ.get("WORLD_SIZE", "1"))
