"""Which k the fuser chose, by what the query voxel is (paper Table V): per ground-truth class and size group.

A query voxel of pyramid scale s covers a block of label voxels (coarse grid pooled by 2**s, label grid
finer still). Its class is the most frequent semantic class (1..16) among the block's labelled voxels,
"empty" when they are all free, and the block is not counted when none is labelled (255). Size groups:
small objects (pedestrian, bicycle, motorcycle, traffic cone, barrier), large objects (car, truck, bus,
trailer, construction vehicle), surfaces (driveable surface, other flat, sidewalk, terrain), other
(manmade, vegetation) and empty.
"""

from __future__ import annotations

import numpy as np

from tacocc_core.labels import CLASS_IDS, CLASS_NAMES, IGNORE, NUM_CLASSES

SIZE_GROUPS: dict[str, tuple[str, ...]] = {
    "small objects": ("pedestrian", "bicycle", "motorcycle", "traffic_cone", "barrier"),
    "large objects": ("car", "truck", "bus", "trailer", "construction_vehicle"),
    "surfaces": ("driveable_surface", "other_flat", "sidewalk", "terrain"),
    "other": ("manmade", "vegetation"),
    "empty": ("empty",),
}
MODALITIES = ("image", "lidar")


def block_classes(labels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(X, Y, Z) uint8 labels -> (Xs, Ys, Zs) int64 class of each block of a coarser grid (-1: unlabelled).

    The label grid must be an integer multiple of `shape` along every axis.
    """
    factors = [a // b for a, b in zip(labels.shape, shape, strict=True)]
    if any(f < 1 or f * b != a for f, a, b in zip(factors, labels.shape, shape, strict=True)):
        raise ValueError(f"block_classes: label grid {labels.shape} is not a multiple of {shape}")
    fx, fy, fz = factors
    blocks = labels.reshape(shape[0], fx, shape[1], fy, shape[2], fz).transpose(0, 2, 4, 1, 3, 5)
    blocks = blocks.reshape(-1, fx * fy * fz).astype(np.int64)
    n = len(blocks)
    valid = blocks != IGNORE
    rows = np.broadcast_to(np.arange(n)[:, None], blocks.shape)
    counts = np.zeros((n, NUM_CLASSES), dtype=np.int64)
    np.add.at(counts, (rows[valid], blocks[valid]), 1)
    semantic = counts[:, 1:]
    out = np.where(semantic.max(axis=1) > 0, semantic.argmax(axis=1) + 1, 0)
    out[counts.sum(axis=1) == 0] = -1
    return out.reshape(shape)


class KByClass:
    """Accumulates, per query modality and scale, the chosen-k counts of the query voxels of each class.

    counts[(modality, scale)]: (NUM_CLASSES, K) int64, rows by class id (0 = empty), columns by candidate.
    """

    def __init__(self, candidates: tuple[int, ...]) -> None:
        self.candidates = tuple(candidates)
        self.counts: dict[tuple[str, int], np.ndarray] = {}

    def update(self, k_maps: list[np.ndarray], labels: np.ndarray) -> None:
        """k_maps: per (scale s, modality m) at index s * 2 + m, (Xs, Ys, Zs) int chosen k (0: no query)."""
        for slot, k_map in enumerate(k_maps):
            key = (MODALITIES[slot % 2], slot // 2)
            classes = block_classes(labels, (k_map.shape[0], k_map.shape[1], k_map.shape[2]))
            query = (k_map > 0) & (classes >= 0)
            table = self.counts.setdefault(key, np.zeros((NUM_CLASSES, len(self.candidates)), dtype=np.int64))
            column = np.searchsorted(np.asarray(self.candidates), k_map[query])
            known = column < len(self.candidates)
            np.add.at(table, (classes[query][known], column[known]), 1)

    def merge(self, other: KByClass) -> None:
        for key, table in other.counts.items():
            mine = self.counts.setdefault(key, np.zeros_like(table))
            mine += table

    def by_class(self) -> dict[str, dict[str, list[int]]]:
        """{"image s0": {class name: counts per candidate}} for the classes with any query."""
        return {
            f"{m} s{s}": {CLASS_NAMES[c]: table[c].tolist() for c in range(NUM_CLASSES) if table[c].sum()}
            for (m, s), table in sorted(self.counts.items())
        }

    def by_group(self) -> dict[str, dict[str, list[int]]]:
        """{"image s0": {size group: counts per candidate}}."""
        out = {}
        for (m, s), table in sorted(self.counts.items()):
            groups = {}
            for group, names in SIZE_GROUPS.items():
                ids = [0 if n == "empty" else CLASS_IDS[n] for n in names]
                groups[group] = table[ids].sum(axis=0).tolist()
            out[f"{m} s{s}"] = groups
        return out


def k_cell(counts: list[int], candidates: tuple[int, ...]) -> str:
    """'mean k (share of each k in %; queries)', e.g. '1.82 (30/58/12; 412)'; '-' with no query."""
    n = sum(counts)
    if n == 0:
        return "-"
    mean = sum(k * c for k, c in zip(candidates, counts, strict=True)) / n
    return f"{mean:.2f} ({'/'.join(f'{100 * c / n:.0f}' for c in counts)}; {n})"


def k_tables_markdown(k: KByClass) -> list[str]:
    """Two Markdown tables: by size group, then by class; one column per query modality and scale."""
    if not k.counts:
        return []
    ks = "/".join(str(c) for c in k.candidates)
    lines = []
    for title, table in (("size group of the query voxel", k.by_group()), ("class of the query voxel", k.by_class())):
        columns = list(table)
        rows = list(dict.fromkeys(name for col in table.values() for name in col))
        if title.startswith("class"):
            rows.sort(key=lambda name: CLASS_NAMES.index(name))
        lines += [f"### Chosen k by {title}: mean k (% k={ks}; queries)", ""]
        lines.append("| " + " | ".join(["", *columns]) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        for name in rows:
            cells = [k_cell(table[c].get(name, [0] * len(k.candidates)), k.candidates) for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
