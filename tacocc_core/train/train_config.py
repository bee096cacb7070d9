"""Typed configuration of a training run (schedule, logging, checkpoints, label-efficient options).

Kept apart from the model config (`tacocc_core.config.ModelConfig`): the same network can be trained
with different schedules, and a checkpoint is checked against the model config only. Loaded from YAML
with the same strictness as the model config: unknown keys, wrong types (YAML `"1e-4"` is a string, `2.0`
is not an int) and values out of range raise `ConfigError` naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from tacocc_core.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, UnitFloat
from tacocc_core.strict_yaml import STRICT, read_yaml_mapping, to_plain_dict, validate_mapping


@dataclass(config=STRICT)
class LabelEfficientConfig:
    """Training with few or no voxel labels (the OccLE idea): label fraction + self-supervised terms.

    Args:
        label_fraction: fraction F of labels kept (1 = fully supervised).
        label_mode: "frames" keeps all labels of round(F * n) frames, "voxels" keeps F of every frame's voxels.
        geometry_weight: weight of the binary geometry loss on LiDAR pseudo-labels (0 disables it).
        geometry_on_labelled: also apply the geometry loss to frames that have voxel labels.
        photometric_weight: weight of the photometric rendering loss on frames without labels
            (needs the renderer; 0 disables it).
        teacher_checkpoint: a frozen earlier checkpoint whose confident predictions label unlabelled voxels.
        teacher_threshold: softmax probability a teacher prediction needs to be used as a label.
        teacher_weight: weight of the occupancy loss on teacher labels (0 disables it).
        pseudo_label_max_lag_s: LiDAR returns older than this (time lag, seconds) are left out of the
            geometry pseudo-labels (moving objects smear over multi-sweep windows).
        free_skip_hit_level: a LiDAR ray marks no voxel free in the height level of its own return (see
            `tacocc_core.train.pseudo_labels`: rays ending on the ground run alongside it in that level).
        free_clearance: voxels within this many voxels (x, y) of a LiDAR return are not marked free. Both
            defaults keep rays that graze the ground or pass beside an object from freeing occupied voxels.
    """

    label_fraction: UnitFloat = 1.0
    label_mode: Literal["frames", "voxels"] = "frames"
    geometry_weight: NonNegativeFloat = 0.0
    geometry_on_labelled: bool = False
    photometric_weight: NonNegativeFloat = 0.0
    teacher_checkpoint: str | None = None
    teacher_threshold: Annotated[float, Field(gt=0, le=1)] = 0.7
    teacher_weight: NonNegativeFloat = 0.0
    pseudo_label_max_lag_s: PositiveFloat = 0.5
    free_skip_hit_level: bool = True
    free_clearance: NonNegativeInt = 1


@dataclass(config=STRICT)
class TrainConfig:
    """One training run.

    Args:
        steps: optimiser steps in total.
        batch_size: sequences per step per process (the global batch is this x world size).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay (not applied to biases and norms).
        warmup_steps: linear warm-up steps before the cosine decay.
        min_lr_ratio: the cosine ends at lr x this.
        grad_clip_norm: clip the global gradient L2 norm to this (0 disables clipping).
        bf16: bf16 autocast on CUDA (ignored on CPU).
        renderer: train with the Gaussian renderer's photometric supervision (False: the ablation without).
        val_every: validate (mIoU) every this many steps; the best checkpoint is kept.
        ckpt_every: write the latest checkpoint every this many steps.
        keep_every: also keep that checkpoint as `step_NNNNNN.pt` every this many steps (0: keep none), so
            that runs of different speeds can be compared at the same step.
        log_every: scalars to TensorBoard every this many steps.
        image_every: rendered-vs-real and BEV image grids every this many steps.
        max_nan_in_a_row: stop after this many consecutive non-finite losses.
        seed: seeds Python, numpy and torch (each rank adds its rank).
        num_workers: data-loader worker processes per rank.
        label_efficient: label fraction and self-supervision (see LabelEfficientConfig).
    """

    steps: PositiveInt = 20000
    batch_size: PositiveInt = 1
    lr: PositiveFloat = 1e-4
    weight_decay: NonNegativeFloat = 0.01
    warmup_steps: NonNegativeInt = 500
    min_lr_ratio: UnitFloat = 0.001
    grad_clip_norm: NonNegativeFloat = 35.0
    bf16: bool = True
    renderer: bool = True
    val_every: PositiveInt = 2000
    ckpt_every: PositiveInt = 500
    keep_every: NonNegativeInt = 0
    log_every: PositiveInt = 50
    image_every: PositiveInt = 1000
    max_nan_in_a_row: PositiveInt = 10
    seed: NonNegativeInt = 0
    num_workers: NonNegativeInt = 4
    label_efficient: LabelEfficientConfig = dataclasses.field(default_factory=LabelEfficientConfig)

    def __post_init__(self) -> None:
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be less than steps ({self.steps})")
        le = self.label_efficient
        if le.teacher_weight > 0 and le.teacher_checkpoint is None:
            raise ValueError("label_efficient.teacher_weight > 0 needs label_efficient.teacher_checkpoint")
        if le.photometric_weight > 0 and not self.renderer:
            raise ValueError("label_efficient.photometric_weight > 0 needs renderer: true")


def train_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Validate a nested dict (as read from YAML) into a TrainConfig; `source` names it in errors."""
    return validate_mapping(TrainConfig, data, source, what="training configuration")


def load_train_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Load and validate a training config YAML file (e.g. `config/train_tiny.yaml`)."""
    return train_config_from_dict(read_yaml_mapping(path, "training config"), source=str(path))


def train_config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested dict, the inverse of `train_config_from_dict` (what checkpoints store)."""
    return to_plain_dict(config)
