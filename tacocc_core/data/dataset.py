"""A torch Dataset of T-frame sequences from a nuScenes-layout dataset, and its collate function.

Items are lists of T `Frame`s (consecutive keyframes of one scene); `collate` stacks them with
`tacocc_core.batch.frames_to_batch` into the batch layout the network takes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from tacocc_core.batch import frames_to_batch
from tacocc_core.config import ModelConfig
from tacocc_core.data.augment import flip_y, jitter_colour
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.data.sequences import scene_samples, split_scenes, windows
from tacocc_core.frame import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentOptions:
    """Training-time augmentation (all off by default).

    Args:
        flip_prob: probability of mirroring a whole sequence about y = 0.
        colour_jitter: strength of the brightness/contrast jitter (0 disables it).
        seed: base seed; item i of epoch e uses seed + i (set `epoch` on the dataset to vary).
    """

    flip_prob: float = 0.0
    colour_jitter: float = 0.0
    seed: int = 0


class SequenceDataset(Dataset):
    """Sequences of `length` (default `config.temporal.window`) keyframes of the scenes of `split`."""

    def __init__(
        self,
        reader: NuScenesReader,
        split: str,
        length: int | None = None,
        stride: int = 1,
        augment: AugmentOptions | None = None,
    ) -> None:
        self.reader = reader
        self.length = length or reader.config.temporal.window
        self.augment = augment or AugmentOptions()
        self.epoch = 0
        per_scene = []
        for name in split_scenes(reader.nusc, split):
            run: list[str] = []
            for tok in scene_samples(reader.nusc, name):
                problem = reader.camera_problem(tok) if reader.options.missing_camera == "skip" else None
                if problem:  # a skipped sample cuts the scene: windows never bridge it
                    log.warning("skipping %s", problem)
                    per_scene.append(run)
                    run = []
                else:
                    run.append(tok)
            per_scene.append(run)
        self.sequences = windows(per_scene, self.length, stride)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> list[Frame]:
        frames = [self.reader.frame(tok) for tok in self.sequences[index]]
        aug = self.augment
        if aug.flip_prob == 0 and aug.colour_jitter == 0:
            return frames
        rng = np.random.default_rng([aug.seed, self.epoch, index])
        if rng.uniform() < aug.flip_prob:
            frames = [flip_y(f, self.reader.grid) for f in frames]
        if aug.colour_jitter > 0:
            frames = [jitter_colour(f, rng, aug.colour_jitter) for f in frames]
        return frames


def make_collate(config: ModelConfig):
    """collate_fn for a DataLoader over SequenceDataset: list of sequences -> batch dict of tensors."""
    shape = config.grid.spec().shape

    def collate(sequences: list[list[Frame]]) -> dict[str, torch.Tensor]:
        return frames_to_batch(sequences, shape)

    return collate
