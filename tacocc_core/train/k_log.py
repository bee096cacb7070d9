"""The chosen-k histograms of training and of validation, logged side by side.

Training chooses k under Gumbel noise and an annealed temperature, validation with the inference rule; the
two histograms (per query modality and pyramid scale) show whether the selector's training-time choices
are the ones it makes at inference, and how they drift.
"""

from __future__ import annotations

from collections.abc import Iterable

from tacocc_core.model.fuser import KStats
from tacocc_core.train.evaluation import KHistogram, add_k_histogram


class KCounter:
    """Sums the k histograms of the training steps since the last `take`."""

    def __init__(self) -> None:
        self.total: KHistogram = {}

    def add(self, stats: Iterable[KStats]) -> None:
        """Add every frame of every KStats (one per time step of a window)."""
        for s in stats:
            for frame in range(s.counts.shape[0]):
                add_k_histogram(self.total, s.as_dict(frame))

    def take(self) -> KHistogram:
        """The histogram so far; the counter starts again from zero."""
        total, self.total = self.total, {}
        return total


def k_shares(histogram: KHistogram) -> dict[str, float]:
    """{"image_s0_k1": share, ...}: share of each k among the queries of a modality and scale."""
    out = {}
    for modality, scales in sorted(histogram.items()):
        for scale, counts in sorted(scales.items()):
            n = sum(counts.values())
            for k, c in sorted(counts.items()):
                out[f"{modality}_s{scale}_k{k}"] = c / n if n else 0.0
    return out


def k_side_by_side(train: KHistogram, val: KHistogram) -> str:
    """One line per modality and scale: '% of queries per k, train | val'."""
    lines = []
    for modality in sorted(set(train) | set(val)):
        for scale in sorted(set(train.get(modality, {})) | set(val.get(modality, {}))):
            cells = []
            for name, hist in (("train", train), ("val", val)):
                counts = hist.get(modality, {}).get(scale, {})
                n = sum(counts.values())
                shares = " / ".join(f"{100 * c / n:.0f}" if n else "-" for _, c in sorted(counts.items()))
                cells.append(f"{name} {shares or '-'}")
            ks = sorted({k for h in (train, val) for k in h.get(modality, {}).get(scale, {})})
            lines.append(f"  k {'/'.join(map(str, ks))} % {modality} s{scale}: " + " | ".join(cells))
    return "\n".join(lines)
