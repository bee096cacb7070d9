"""How far the LiDAR geometry pseudo-labels of the self-supervised mode agree with the voxel ground truth.

    python -m benchmarks.studies.geometry_label_agreement BAG [BAG ...] [--config demo] [--every 3] \
        [--skip-hit-level] [--clearance N]

Frames come from the bags as `training_node` assembles them (labels attached from `/occupancy/gt`); for the
labelled frames of every `--every`-th sequence the geometry target of the training objective (FREE / OCCUPIED /
UNKNOWN from ray casting the frame's sweeps, `batch_geometry_targets`) is compared with the labels. Prints
the share of pseudo-FREE voxels the ground truth calls occupied, of pseudo-OCCUPIED voxels it calls empty,
how many of the empty ground-truth voxels the rays call free (what a conservative rule gives up), and per
class and per height level how many occupied ground-truth voxels the rays call free. `--skip-hit-level` and
`--clearance` are the label-efficient options `free_skip_hit_level` and `free_clearance`.
"""

from __future__ import annotations

import argparse

import numpy as np

from tacocc_core.config import load_preset
from tacocc_core.data.dataset import make_collate
from tacocc_core.labels import CLASS_NAMES, IGNORE
from tacocc_core.train.geometry_targets import batch_geometry_targets
from tacocc_core.train.pseudo_labels import FREE, OCCUPIED
from tacocc_core.train.train_config import TrainConfig
from tacocc_ros.training.bag_training import FineTuneSpec, load_sequences


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bags", nargs="+")
    ap.add_argument("--config", default="demo")
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--skip-hit-level", action="store_true")
    ap.add_argument("--clearance", type=int, default=0)
    args = ap.parse_args()
    config = load_preset(args.config)
    tc = TrainConfig(renderer=False)
    seqs = load_sequences(FineTuneSpec(tuple(args.bags), config, tc, "", mode="supervised"))[:: args.every]
    collate = make_collate(config)
    grid = config.grid.spec()
    n_cls = len(CLASS_NAMES)
    free_occ = np.zeros(n_cls, np.int64)
    occupied_gt = np.zeros(n_cls, np.int64)
    free_by_z = np.zeros(grid.shape[2], np.int64)
    free = occupied = occupied_empty = unknown = known_gt = empty_gt = empty_free = 0
    frames = 0
    for seq in seqs:
        batch = collate([seq])
        max_lag = tc.label_efficient.pseudo_label_max_lag_s
        targets = batch_geometry_targets(batch, grid, max_lag, args.skip_hit_level, args.clearance)[0].numpy()
        for t in np.flatnonzero(batch["has_labels"][0].numpy()):  # keyframes: the frames with labels
            target, labels = targets[t], batch["labels"][0, t].numpy()
            frames += 1
            valid = labels != IGNORE
            gt_occ = valid & (labels != 0)
            called_free = (target == FREE) & gt_occ
            known_gt += int(valid.sum())
            unknown += int(((target != FREE) & (target != OCCUPIED) & valid).sum())
            free += int(((target == FREE) & valid).sum())
            occupied += int(((target == OCCUPIED) & valid).sum())
            occupied_empty += int(((target == OCCUPIED) & valid & (labels == 0)).sum())
            empty_gt += int((valid & (labels == 0)).sum())
            empty_free += int(((target == FREE) & valid & (labels == 0)).sum())
            free_occ += np.bincount(labels[called_free], minlength=n_cls)[:n_cls]
            occupied_gt += np.bincount(labels[gt_occ], minlength=n_cls)[:n_cls]
            free_by_z += called_free.sum(axis=(0, 1))
    print(f"{frames} labelled frames, {known_gt} labelled voxels, {unknown / known_gt:.1%} without a pseudo-label")
    print(
        f"pseudo-FREE voxels the ground truth calls occupied: {free_occ.sum()} / {free} = {free_occ.sum() / free:.1%}"
    )
    print(f"pseudo-OCCUPIED voxels it calls empty: {occupied_empty} / {occupied} = {occupied_empty / occupied:.1%}")
    print(f"empty ground-truth voxels called FREE: {empty_free} / {empty_gt} = {empty_free / empty_gt:.1%}")
    print("occupied ground-truth voxels called FREE, per class:")
    for c in range(1, n_cls):
        if occupied_gt[c]:
            print(f"  {CLASS_NAMES[c]}: {free_occ[c]} / {occupied_gt[c]} = {free_occ[c] / occupied_gt[c]:.1%}")
    lower, size = grid.lower[2], grid.voxel_size[2]
    levels = ", ".join(f"[{lower + z * size:g}, {lower + (z + 1) * size:g}) m: {n}" for z, n in enumerate(free_by_z))
    print(f"the same per height level (LiDAR frame): {levels}")


if __name__ == "__main__":
    main()
