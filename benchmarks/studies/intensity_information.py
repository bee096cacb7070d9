"""How much of the class the generated LiDAR intensity gives away, now and with one intensity per class.

Casts the HDL-32E sweeps of a few generated streets and prints the share of returns whose class the best
guess from the intensity alone gets right (a 64-bin histogram over 0..255, the Bayes rule fitted on the
same points), for the generator's intensity and for the earlier table (one value per class times
(0.5 + 0.5 cos_inc)), beside the share of the majority class, and the 10/50/90th percentiles per class.

    python -m benchmarks.studies.intensity_information --streets 3
"""

from __future__ import annotations

import argparse

import numpy as np

from tacocc_core.data.synthetic.intensity import lidar_intensity, material_reflectance
from tacocc_core.data.synthetic.raycast import SpinningGrid, cast
from tacocc_core.data.synthetic.rig import surround_rig
from tacocc_core.data.synthetic.sensors import LIDAR_ELEVATIONS_DEG, LIDAR_MAX_RANGE
from tacocc_core.data.synthetic.street import build_street
from tacocc_core.labels import CLASS_IDS, CLASS_NAMES

# The generator's earlier intensity at normal incidence, one value per class (20 for the others).
EARLIER = {"driveable_surface": 6, "sidewalk": 14, "terrain": 18, "manmade": 30, "vegetation": 24, "car": 45,
           "truck": 50, "bus": 55, "pedestrian": 12, "bicycle": 35, "barrier": 70, "traffic_cone": 100}  # fmt: skip


def bayes_share(label: np.ndarray, intensity: np.ndarray, bins: int = 64) -> float:
    table = np.zeros((bins, len(CLASS_NAMES)))
    np.add.at(table, (np.clip((intensity / 256 * bins).astype(int), 0, bins - 1), label), 1)
    return float(table.max(axis=1).sum() / len(label))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streets", type=int, default=3)
    args = parser.parse_args()
    rig = surround_rig()
    earlier = np.full(len(CLASS_NAMES), 20.0)
    for name, value in EARLIER.items():
        earlier[CLASS_IDS[name]] = value
    labels, now, before = [], [], []
    for street_idx in range(args.streets):
        street = build_street(np.random.default_rng([0, street_idx]), 8.0, (0.0, 0.0))
        for t in (0.0, 2.0, 4.0):
            grid = SpinningGrid(np.deg2rad(LIDAR_ELEVATIONS_DEG), 1084, street.ego2street(t) @ rig.lidar2ego)
            hits = cast(grid, street.parts_at(t), max_range=LIDAR_MAX_RANGE)
            keep = np.isfinite(hits.t)
            cos = np.abs(np.einsum("ij,ij->i", hits.normal[keep], grid.dirs.reshape(-1, 3)[keep]))
            rho = material_reflectance(hits.label[keep], hits.part[keep], hits.point[keep], street_idx)
            now.append(lidar_intensity(rho, hits.t[keep], cos, 1.0, np.random.default_rng(1)))
            before.append(earlier[hits.label[keep]] * (0.5 + 0.5 * cos))
            labels.append(hits.label[keep].astype(int))
    label = np.concatenate(labels)
    intensity = np.concatenate(now)
    print(f"{len(label)} returns; majority class {100 * np.bincount(label).max() / len(label):.1f} %")
    print(f"class from intensity alone: earlier table {100 * bayes_share(label, np.concatenate(before)):.1f} %, "
          f"now {100 * bayes_share(label, intensity):.1f} %")  # fmt: skip
    for c in np.unique(label):
        p10, p50, p90 = np.percentile(intensity[label == c], [10, 50, 90])
        print(f"{CLASS_NAMES[c]:22s} {p10:6.1f} {p50:6.1f} {p90:6.1f}  ({(label == c).sum()} returns)")


if __name__ == "__main__":
    main()
