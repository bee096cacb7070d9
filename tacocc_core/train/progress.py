"""What a training run shows while it runs: a progress line and TensorBoard scalars and images (rank 0 only).

The progress line (tqdm) shows the step, the loss terms, throughput in samples per second and the ETA;
TensorBoard gets scalars (`loss/*`, `lr`, `val/*`) and image grids (rendered vs real views, BEV of
prediction vs ground truth). On ranks other than 0 every method is a no-op and no file is created.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from tacocc_core.labels import EMPTY, IGNORE, colorize

if TYPE_CHECKING:  # imported when first needed: tensorboard is slow to import
    from torch.utils.tensorboard import SummaryWriter


class ProgressLine:
    """A tqdm bar over optimiser steps that resumes at `start_step`.

    Args:
        total_steps: steps of the whole run.
        start_step: steps already done (a resumed run).
        enabled: False on ranks other than 0.
    """

    def __init__(self, total_steps: int, start_step: int = 0, enabled: bool = True) -> None:
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, disable=not enabled)
        self._last = time.perf_counter()
        self.samples_per_s = float("nan")

    def update(self, terms: dict[str, float], samples: int, steps: int = 1) -> None:
        """Advance by `steps` that processed `samples` sequences in all; `terms` are shown as name=value."""
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        self.samples_per_s = samples / elapsed if elapsed > 0 else float("nan")
        shown = {name: f"{value:.4g}" for name, value in terms.items()}
        shown["samples/s"] = f"{self.samples_per_s:.2f}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(steps)

    def write(self, message: str) -> None:
        """A line of text above the bar (validation results, warnings)."""
        if not self.bar.disable:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()


def bev_image(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Bird's-eye view of a label grid: the colour of the highest non-empty voxel of each column.

    Args:
        labels: (X, Y, Z) uint8, 0 empty, 1..16, 255 ignore.

    Returns:
        (Y, X, 3) uint8 RGB image with +x to the right and +y up (row 0 = largest y); columns with
        nothing but empty voxels are black, columns with only ignore (and empty) are dark grey.
    """
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"bev_image: expected (X, Y, Z) labels, got {labels.shape}")
    semantic = (labels != EMPTY) & (labels != IGNORE)
    z = labels.shape[2] - 1 - np.argmax(semantic[:, :, ::-1], axis=2)  # highest semantic voxel per column
    top = np.take_along_axis(labels, z[:, :, None], axis=2)[:, :, 0]
    top = np.where(semantic.any(axis=2), top, np.where((labels == IGNORE).any(axis=2), IGNORE, EMPTY))
    image = colorize(top)
    image[top == EMPTY] = 0
    return np.ascontiguousarray(image.transpose(1, 0, 2)[::-1])


def side_by_side(*images: np.ndarray, gap: int = 2) -> np.ndarray:
    """(H, W_i, 3) uint8 images of equal height -> one (H, sum W_i + gaps, 3) image with white gaps."""
    heights = {im.shape[0] for im in images}
    if len(heights) != 1:
        raise ValueError(f"side_by_side: images differ in height: {[im.shape for im in images]}")
    h = heights.pop()
    pieces: list[np.ndarray] = []
    for i, im in enumerate(images):
        if i:
            pieces.append(np.full((h, gap, 3), 255, np.uint8))
        pieces.append(im)
    return np.concatenate(pieces, axis=1)


class TensorBoardLogger:
    """Scalars and images under `log_dir`, written by rank 0 only (the writer is opened on first use).

    Args:
        log_dir: the run's TensorBoard folder.
        enabled: False on ranks other than 0.
    """

    def __init__(self, log_dir: str | os.PathLike[str], enabled: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        """The event file writer, opened on first use."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        """One scalar per entry, tagged `prefix/name` (non-finite values are written too: they show divergence)."""
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}" if prefix else name, float(value), step)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """(H, W, 3) uint8 RGB image."""
        if not self.enabled:
            return
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"TensorBoardLogger.image({tag!r}): expected (H, W, 3) uint8, got {image.shape} {image.dtype}"
            )
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
