"""What serving Foxglove costs the occupancy node: `tacocc drive` runs alternating bridge off / bridge on.

Each run starts a fresh node on the real fixture frame (LiDAR 20 Hz, six cameras 12 Hz, /odom 50 Hz, the
demo checkpoint). "on" runs set `foxglove_port` and connect a Foxglove client to every channel for the whole
run (`--foxglove-client`: what an open Foxglove app costs the node); "off" runs leave the parameter at 0.
Runs alternate (off, on, off, on, ...) so that other load on the machine falls on both alike.

    python -m benchmarks.speed.foxglove_cost --pairs 3 --duration 40 --out runs/foxglove_cost
    python -m benchmarks.speed.foxglove_cost --per-frame 200 [--config nuscenes_r50_256x704]

Prints one line per run and mean +- std per mode: node CPU (% of one core, node + inference process),
end-to-end latency p50 / p99 (LiDAR publication -> the grid cloud received by the driver), output rate,
and what the client received. `--per-frame N` instead times, on the CPU clock of the calling thread (which
other load on the machine inflates far less than wall time), N frames of the bridge's work for the fixture
frame and the demo grid with a client subscribed to every channel: what the bridge's thread spends per
frame (building the messages, encoding, handing them to the server), and apart the hand-over `submit` does
on the node's worker thread.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drive(mode: str, index: int, args: argparse.Namespace) -> dict:
    out = args.out / f"{index:02d}_{mode}.json"
    command = [
        sys.executable, "-m", "tacocc_ros.cli", "drive", "--duration", str(args.duration), "--warmup",
        str(args.warmup), "--no-bench", "--no-mcap", "--out", str(out),
    ]  # fmt: skip
    if mode == "on":
        command += ["--param", f"foxglove_port={free_port()}", "--foxglove-client"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(out.read_text())


def figures(report: dict) -> dict:
    e2e = report["latency_end_to_end_ms"]
    client = report.get("foxglove_client") or {}
    return {
        "node_cpu_percent": report["node_cpu_percent"],
        "e2e_p50_ms": e2e["p50"],
        "e2e_p99_ms": e2e["p99"],
        "rate_hz": report["output_rate_hz"],
        "client_grids": (client.get("messages") or {}).get("/occupancy/voxels", 0),
        "client_mb": round(sum((client.get("megabytes") or {}).values()), 1),
        "load_before": report["load_average"]["before"][0],
    }


def per_frame(frames: int, preset: str) -> None:
    import time

    import numpy as np

    from tacocc_core.config import load_preset
    from tacocc_core.frame import Frame
    from tacocc_ros.node.foxglove_bridge import FoxgloveBridge
    from tacocc_ros.node.frame_assembly import LidarInput
    from tacocc_ros.node.sync import SyncedSet
    from tacocc_ros.node.worker import Worker
    from tacocc_ros.tooling.drive_source import default_fixture, frame_from_fixture
    from tacocc_ros.tooling.foxglove_client import FoxgloveClient
    from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages

    config = load_preset(preset)
    grid = config.grid.spec()
    drive_frame = frame_from_fixture(default_fixture())
    messages = FrameMessages(drive_frame, DriveOptions(raw_camera=None))
    cameras = tuple(config.cameras.names)
    points = np.stack([drive_frame.points[c] for c in ("x", "y", "z", "intensity")], axis=1).astype(np.float32)
    h, w = config.cameras.image_size
    frame = Frame(
        images=np.zeros((len(cameras), h, w, 3), np.uint8),
        cam2img=np.stack([np.eye(3)] * len(cameras)),
        cam2lidar=np.stack([drive_frame.calibration.cameras[c].cam2lidar for c in cameras]),
        points=np.zeros((0, 5), np.float32),
        lidar2global=drive_frame.ego2global @ drive_frame.calibration.lidar2ego,
        stamp_ns=0,
    )
    labels = np.random.default_rng(0).integers(0, 17, grid.shape).astype(np.uint8)
    bridge = FoxgloveBridge(grid, cameras, port=0)
    bridge.worker.stop()
    bridge.worker = Worker(bridge._log)  # not started: the loop below takes each frame and times the work alone
    with FoxgloveClient(f"ws://127.0.0.1:{bridge.port}", keep=False) as client:
        while not bridge.channels.has_sinks() or len(client.channels) < len(cameras) + 3:
            time.sleep(0.1)
        time.sleep(0.5)
        submit_s, log_s = [], []
        for i in range(frames):
            stamp = 1_700_000_000_000_000_000 + i * 50_000_000
            synced = SyncedSet(stamp, None, {c: (stamp, messages.images[c]) for c in cameras})
            lidar = LidarInput(stamp, drive_frame.lidar_frame, points, 0)
            t0 = time.thread_time()
            bridge.submit(frame, labels, synced, lidar)
            submit_s.append(time.thread_time() - t0)
            handoff = bridge.worker._slot.take(timeout=1.0)[1]  # the bridge's work, on this thread, timed alone
            t0 = time.thread_time()
            bridge._log(handoff)
            log_s.append(time.thread_time() - t0)
            time.sleep(0.05)
        time.sleep(1.0)
        got = sum(client.counts.values())
    bridge.close()
    for name, values in (("submit (node worker thread)", submit_s), ("build + log (bridge thread)", log_s)):
        ms = np.asarray(values) * 1e3
        p50, p90 = np.percentile(ms, 50), np.percentile(ms, 90)
        print(f"{name}: CPU ms per frame p50 {p50:.2f}, p90 {p90:.2f}, mean {ms.mean():.2f}")
    print(f"grid {grid.shape}, frames {frames}, messages the client received {got} (of {frames * (len(cameras) + 3)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("runs/foxglove_cost"))
    parser.add_argument("--per-frame", type=int, default=0, metavar="N", help="time N frames of the bridge instead")
    parser.add_argument("--config", default="demo", help="with --per-frame: the preset whose grid is sent")
    args = parser.parse_args()
    if args.per_frame:
        per_frame(args.per_frame, args.config)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows: dict[str, list[dict]] = {"off": [], "on": []}
    index = 0
    for _ in range(args.pairs):
        for mode in ("off", "on"):
            row = figures(drive(mode, index, args))
            rows[mode].append(row)
            index += 1
            print(f"run {index:2d} {mode:3s} " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
    summary = {}
    for mode, got in rows.items():
        summary[mode] = {}
        for key in ("node_cpu_percent", "e2e_p50_ms", "e2e_p99_ms", "rate_hz"):
            values = [r[key] for r in got if r[key] is not None]
            mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
            summary[mode][key] = (mean, std)
        print(f"{mode:3s} " + ", ".join(f"{k} {m:.1f} +- {s:.1f}" for k, (m, s) in summary[mode].items()))
    (args.out / "summary.json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
