"""Data-layer timings: per-stage synthetic rendering, whole-dataset generation, reader latency.

Usage: python -m benchmarks.speed.bench_data [--scenes 2] [--keyframes 20] [--workers 2] [--fixtures DIR]
Prints numbers only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.fixtures import fixtures_root
from tacocc_core.config import load_preset
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.data.synthetic.rig import load_rig
from tacocc_core.data.synthetic.sensors import lidar_sweep, render_camera, voxelize
from tacocc_core.data.synthetic.street import build_street
from tacocc_core.data.synthetic.writer import GenerateOptions, generate_dataset
from tacocc_core.labels import SURROUNDOCC_GRID


def median_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--keyframes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fixtures", type=Path, default=fixtures_root(), help="default: $TACOCC_FIXTURES")
    args = ap.parse_args()

    rig = load_rig(args.fixtures / "nuscenes_frame" / "calib.json")
    street = build_street(np.random.default_rng(0), 10.0, (0.0, 0.0))
    rng = np.random.default_rng(0)
    cam = rig.cameras[0]
    k = rig.intrinsics(cam, (225, 400))
    camera_s = median_time(lambda: render_camera(street, 2.0, rig.cam2ego[cam], k, (225, 400)))
    print(f"camera 400x225:   {1e3 * camera_s:.1f} ms")
    print(f"lidar sweep 1084: {1e3 * median_time(lambda: lidar_sweep(street, 2.0, rig.lidar2ego, 1084, rng)):.1f} ms")
    print(
        f"labels 200x200x16: {1e3 * median_time(lambda: voxelize(street, 2.0, rig.lidar2ego, SURROUNDOCC_GRID)):.1f} ms"
    )

    tmp = Path(tempfile.mkdtemp())
    try:
        opts = GenerateOptions(scenes=args.scenes, keyframes=args.keyframes, workers=args.workers)
        start = time.perf_counter()
        generate_dataset(tmp / "ds", opts, args.calib)
        print(
            f"generate {args.scenes} scenes x {args.keyframes} keyframes, 400x225, 9 sweeps, "
            f"{args.workers} workers: {time.perf_counter() - start:.1f} s"
        )
        cfg = load_preset("tiny")
        reader = NuScenesReader.open(tmp / "ds", "v1.0-mini", cfg)
        tokens = [s["token"] for s in reader.nusc.sample]
        reader.frame(tokens[0])
        times = []
        for tok in tokens:
            start = time.perf_counter()
            reader.frame(tok)
            times.append(time.perf_counter() - start)
        print(
            f"reader, tiny preset ({cfg.lidar.sweeps} sweeps), one frame: median {1e3 * np.median(times):.1f} ms, "
            f"p90 {1e3 * np.percentile(times, 90):.1f} ms"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
