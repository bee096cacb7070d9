"""Which frames (or voxels) keep their labels in label-efficient training (`--label-fraction F`).

The choice is a function of (seed, sample token) only: the same frames are labelled in every run, on
every rank and in every data-loader worker, whatever the order in which samples are visited.

- frames mode: the tokens are ranked by a keyed hash and the first round(F * n) keep their labels
  (exactly that many, at least one when F > 0); the other frames train as unlabelled.
- voxels mode: every frame keeps a random F of its voxels (a Bernoulli mask drawn from a generator
  seeded by the hash of the token); dropped voxels become 255 (ignore).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np

from tacocc_core.labels import IGNORE


def token_hash(token: str, seed: int) -> int:
    """A stable 64-bit integer of (seed, token); unlike `hash()` it does not change between processes."""
    digest = hashlib.blake2b(f"{seed}:{token}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label fraction must be in [0, 1], got {fraction}")


def select_labelled_frames(tokens: Iterable[str], fraction: float, seed: int) -> frozenset[str]:
    """The sample tokens that keep their labels: round(fraction * n) of the n distinct tokens (>= 1 if > 0).

    Args:
        tokens: every sample token of the training set (order does not matter; duplicates count once).
        fraction: in [0, 1].
        seed: selects a different subset.
    """
    _check_fraction(fraction)
    unique = sorted(set(tokens))
    if fraction == 0.0 or not unique:
        return frozenset()
    count = max(1, round(fraction * len(unique)))
    ranked = sorted(unique, key=lambda t: (token_hash(t, seed), t))
    return frozenset(ranked[:count])


def voxel_keep_mask(token: str, shape: tuple[int, ...], fraction: float, seed: int) -> np.ndarray:
    """(shape) bool: the voxels of frame `token` whose labels are kept (each with probability `fraction`)."""
    _check_fraction(fraction)
    rng = np.random.default_rng(token_hash(token, seed))
    return rng.random(shape) < fraction


def apply_label_fraction(
    labels: np.ndarray | None,
    token: str,
    mode: Literal["frames", "voxels"],
    fraction: float,
    seed: int,
    labelled_frames: frozenset[str] | None = None,
) -> np.ndarray | None:
    """The labels a frame trains with under a label fraction; the input is not modified.

    Args:
        labels: (X, Y, Z) uint8 (0..16, 255) or None for a frame without labels.
        token: the frame's sample token.
        mode: "frames" (keep all or nothing, by membership in `labelled_frames`) or "voxels".
        fraction: in [0, 1]; 1 returns the labels unchanged.
        seed: the selection seed.
        labelled_frames: the output of `select_labelled_frames` over the training set (frames mode).

    Returns:
        The kept labels with dropped voxels set to 255, or None when the frame keeps none.
    """
    _check_fraction(fraction)
    if labels is None or fraction == 1.0:
        return labels
    if mode == "frames":
        if labelled_frames is None:
            raise ValueError("apply_label_fraction: frames mode needs labelled_frames (see select_labelled_frames)")
        return labels if token in labelled_frames else None
    if mode == "voxels":
        keep = voxel_keep_mask(token, labels.shape, fraction, seed)
        return np.where(keep, labels, np.uint8(IGNORE)).astype(labels.dtype)
    raise ValueError(f"apply_label_fraction: mode must be 'frames' or 'voxels', got {mode!r}")
