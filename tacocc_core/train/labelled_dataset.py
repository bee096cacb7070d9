"""Training sequences with the label fraction applied: which frames (or voxels) keep their labels.

Wraps a `SequenceDataset`: the frames whose labels are dropped come back with `labels=None` (frames mode)
or with the dropped voxels at 255 (voxels mode). The choice depends on the sample token and the seed only
(`label_fraction.py`), so it is the same in every data-loader worker, on every rank and after a resume.
"""

from __future__ import annotations

import dataclasses

from torch.utils.data import Dataset

from tacocc_core.data.dataset import SequenceDataset
from tacocc_core.frame import Frame
from tacocc_core.train.label_fraction import apply_label_fraction, select_labelled_frames
from tacocc_core.train.train_config import LabelEfficientConfig


class LabelFractionDataset(Dataset):
    """`dataset`'s sequences with `config.label_fraction` of the labels kept.

    Args:
        dataset: the training sequences.
        config: label fraction and mode.
        seed: selection seed (the run's seed).
    """

    def __init__(self, dataset: SequenceDataset, config: LabelEfficientConfig, seed: int) -> None:
        self.dataset = dataset
        self.config = config
        self.seed = seed
        tokens = [tok for seq in dataset.sequences for tok in seq]
        self.labelled = select_labelled_frames(tokens, config.label_fraction, seed)

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.dataset.epoch = value  # seeds the augmentation of the wrapped dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> list[Frame]:
        frames = self.dataset[index]
        c = self.config
        if c.label_fraction == 1.0:
            return frames
        out = []
        for f in frames:
            labels = apply_label_fraction(
                f.labels, f.sample_token, c.label_mode, c.label_fraction, self.seed, self.labelled
            )
            out.append(dataclasses.replace(f, labels=labels) if labels is not f.labels else f)
        return out
