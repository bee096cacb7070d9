"""Lovasz-softmax loss (Berman, Rannen Triki, Blaschko, CVPR 2018): a convex surrogate of 1 - IoU per class.

For class c with ground-truth set F_c and errors m_i = |[y_i = c] - p_i(c)|, the loss is the Lovasz
extension of the Jaccard loss Delta_c(M) = |M| / |F_c u M| evaluated at m: sort m in decreasing
order, and weigh the k-th largest error by Delta_c(first k) - Delta_c(first k-1). The result is
averaged over the classes present in the ground truth.

Written here because the maintained packages that ship it (segmentation-models-pytorch, and others)
bring in model zoos and hub clients for a 30-line function; the test checks it against the
threshold-integral definition of the Lovasz extension evaluated set by set.
"""

from __future__ import annotations

import torch

from tacocc_core.labels import IGNORE


def jaccard_weights(foreground_sorted: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(P,) {0,1} ground truth in order of decreasing error -> (P,) Delta(first k) - Delta(first k-1).

    Delta(first k) = |M_k| / |F u M_k| = 1 - |F minus M_k| / |F u M_k| with M_k the k largest errors.
    """
    fg = foreground_sorted.to(dtype)
    total = fg.sum()
    intersection = total - fg.cumsum(0)  # foreground not yet among the errors
    union = total + (1.0 - fg).cumsum(0)  # foreground plus background errors
    jaccard = 1.0 - intersection / union
    if fg.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_softmax_flat(probs: torch.Tensor, labels: torch.Tensor, classes_present: bool = True) -> torch.Tensor:
    """Lovasz-softmax over flattened voxels.

    Args:
        probs: (P, K) class probabilities (softmax output).
        labels: (P,) int64 in 0..K-1, no ignore values.
        classes_present: average over classes that occur in `labels` only (else over all K).

    Returns:
        scalar loss; 0 (attached to `probs`) when P == 0.
    """
    if probs.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in range(probs.shape[1]):
        fg = labels == c
        if classes_present and not fg.any():
            continue
        errors = (fg.to(probs.dtype) - probs[:, c]).abs()
        errors_sorted, order = errors.sort(descending=True)
        losses.append(torch.dot(errors_sorted, jaccard_weights(fg[order], probs.dtype)))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


def lovasz_softmax(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """Lovasz-softmax of a batch of volumes, over all non-ignored voxels together.

    Args:
        logits: (B, K, X, Y, Z) class logits.
        labels: (B, X, Y, Z) integer labels.
        ignore_index: label of voxels left out.
    """
    if logits.dim() < 2 or labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"lovasz_softmax: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match")
    probs = torch.softmax(logits.float(), dim=1).movedim(1, -1).reshape(-1, logits.shape[1])
    labels = labels.reshape(-1).long()
    valid = labels != ignore_index
    return lovasz_softmax_flat(probs[valid], labels[valid])
