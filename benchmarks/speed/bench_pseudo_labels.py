"""Timing of the LiDAR geometry pseudo-labels on the real nuScenes sweep of the fixtures.

Usage: python -m benchmarks.speed.bench_pseudo_labels [--preset nuscenes_r50_256x704] [--copies 1 10]
`--copies 10` stacks the sweep ten times with jittered sensor origins, about the size of a 10-sweep
multi-sweep cloud. Prints the median wall and CPU time of 3 runs; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.fixtures import fixtures_root
from tacocc_core.config import load_preset
from tacocc_core.train.pseudo_labels import FREE, OCCUPIED, lidar_geometry_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, default=fixtures_root(), help="default: $TACOCC_FIXTURES")
    ap.add_argument("--preset", default="nuscenes_r50_256x704")
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    grid = load_preset(args.preset).grid.spec()
    sweep = np.fromfile(next((args.fixtures / "nuscenes_frame").glob("*LIDAR_TOP*.pcd.bin")), np.float32).reshape(-1, 5)
    rng = np.random.default_rng(0)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, grid {grid.shape}")
    for copies in args.copies:
        points = np.concatenate([sweep] * copies)
        origins = np.repeat(rng.normal(0, 0.5, (copies, 3)), len(sweep), axis=0)
        pts = torch.from_numpy(points).to(args.device)
        org = torch.from_numpy(origins).to(args.device)
        walls, cpus = [], []
        for _ in range(3):
            w, c = time.perf_counter(), time.process_time()
            target = lidar_geometry_target(pts, grid, origins=org)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        print(
            f"{len(points):8d} rays: wall {np.median(walls) * 1e3:7.1f} ms, cpu {np.median(cpus) * 1e3:7.1f} ms; "
            f"free {int((target == FREE).sum())}, occupied {int((target == OCCUPIED).sum())}"
        )


if __name__ == "__main__":
    main()
