"""How the occupancy node's threading choices hold up at sensor rates: the measurement behind its executor design.

For each variant (node parameters), a fresh node process is driven by `tacocc drive` (the real fixture frame,
LiDAR 20 Hz, six cameras 12 Hz, /odom 50 Hz, demo checkpoint) for `--duration` seconds; one `tacocc bench`
of the same preset first gives the network's own p50/p99. Prints one row per variant and writes the reports.

    python -m benchmarks.speed.bench_executor --duration 40 --out runs/executor
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))

from tacocc_core.config import load_preset  # noqa: E402
from tacocc_ros.tooling.drive_session import SessionOptions, drive, network_timing, run_bench  # noqa: E402
from tacocc_ros.tooling.drive_source import default_fixture, frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions  # noqa: E402

# (module run with `python -m`, node parameters): the node's own executor, or this benchmark's multi-threaded one
VARIANTS = {
    "multi, 2 torch threads": ("benchmarks.speed.executor_node", {"inference_threads": 2}),
    "single, 2 torch threads": ("tacocc_ros.node.occupancy_node", {"inference_threads": 2}),
    "single, 1 torch thread": ("tacocc_ros.node.occupancy_node", {"inference_threads": 1}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("runs/executor"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--checkpoint", default="checkpoints/demo.pt")
    parser.add_argument("--bench-json", default=None, help="reuse this `tacocc bench --out` file")
    args = parser.parse_args()

    frame = frame_from_fixture(default_fixture())
    config = load_preset("demo")
    args.out.mkdir(parents=True, exist_ok=True)
    bench_path = args.out / "bench.json"
    points = len(frame.points) * (config.lidar.sweeps + 1)
    if args.bench_json:
        bench_path = Path(args.bench_json)
        network = network_timing(json.loads(bench_path.read_text()))
    else:
        network = network_timing(run_bench("demo", points, len(os.sched_getaffinity(0)), bench_path))
    print(f"network (tacocc bench, demo, {points} points): p50 {network['p50_ms']:.1f} ms, p99 {network['p99_ms']:.1f}")
    rows = {}
    for i, name in enumerate(args.variants):
        module, params = VARIANTS[name]
        session = SessionOptions(
            checkpoint=args.checkpoint, node_params=params, bench_json=str(bench_path), node_module=module
        )
        report = drive(frame, DriveOptions(duration_s=args.duration, warmup_s=args.warmup), session,
                       args.out / f"variant{i}.json")  # fmt: skip
        e2e = report["latency_end_to_end_ms"]
        rows[name] = {
            "grids_per_s": report["output_rate_hz"],
            "e2e_p50_ms": e2e["p50"],
            "e2e_p99_ms": e2e["p99"],
            "longest_gap_ms": report["longest_gap_ms"],
            "node_cpu_percent": report["node_cpu_percent"],
            "dropped": report["dropped"],
            "load_average": report["load_average"],
        }
        print(
            f"{name:<26} {report['output_rate_hz']:5.2f} grids/s  e2e p50 {e2e['p50'] or 0:6.0f} ms  "
            f"p99 {e2e['p99'] or 0:6.0f} ms  gap {report['longest_gap_ms']:6.0f} ms  "
            f"node CPU {report['node_cpu_percent'] or 0:4.0f} %  load {report['load_average']['before'][0]:.1f}",
            flush=True,
        )
    (args.out / "summary.json").write_text(json.dumps({"network": network["p50_ms"], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
