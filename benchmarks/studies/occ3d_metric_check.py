"""The Occ3D challenge metric against this package's own on a real Occ3D grid with flipped voxels.

Ground truth (an Occ3D `labels.npz`) as the prediction, with a share of its voxels set to a random class
the network can predict (1..16 or free); printed per draw and as mean +- std over the draws: the challenge's
mIoU (17 classes with "others", inside mask_camera), the mean without "others" of the same matrix, and this
package's own (`OccupancyEvaluator.occ3d`, "others" ignored).

    python -m benchmarks.studies.occ3d_metric_check --labels OCC3D_SAMPLE/labels.npz --draws 20
"""

from __future__ import annotations

import argparse

import numpy as np

from tacocc_core.labels import OCC3D_FREE, occ3d_to_dense
from tacocc_core.metrics import OccupancyEvaluator
from tacocc_core.occ3d_metric import Occ3DMetric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", required=True, help="an Occ3D labels.npz (semantics, mask_camera)")
    parser.add_argument("--share", type=float, default=0.05, help="share of voxels flipped")
    parser.add_argument("--draws", type=int, default=20, help="random draws (seeds 0..N-1)")
    args = parser.parse_args()
    data = np.load(args.labels)
    gt, mask = data["semantics"], data["mask_camera"]
    rows = []
    print("| seed | challenge mIoU | without others | ours |")
    print("|---:|---:|---:|---:|")
    for seed in range(args.draws):
        rng = np.random.default_rng(seed)
        pred = gt.copy()
        flip = rng.random(gt.shape) < args.share
        pred[flip] = rng.integers(1, OCC3D_FREE + 1, int(flip.sum()))
        official = Occ3DMetric()
        official.update(pred, gt, mask)
        ours = OccupancyEvaluator.occ3d()
        ours.update(np.where(pred == OCC3D_FREE, 0, pred), occ3d_to_dense(gt, mask), mask)
        row = (official.miou(), official.miou_without_others(), ours.results()["all"].miou)
        rows.append(row)
        print(f"| {seed} | " + " | ".join(f"{100 * v:.2f}" for v in row) + " |")
    r = 100 * np.asarray(rows)
    std = r.std(axis=0, ddof=1) if len(r) > 1 else np.zeros(3)
    print("| mean +- std | " + " | ".join(f"{m:.2f} +- {s:.2f}" for m, s in zip(r.mean(0), std, strict=True)) + " |")


if __name__ == "__main__":
    main()
