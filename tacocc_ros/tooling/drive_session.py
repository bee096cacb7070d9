"""One `tacocc drive` run: network timing, node, driver, report (JSON + RSS curve PNG, written atomically).

The node is started here as a process (`OccupancyNodeProcess`) or is one already running.

The network timing is `tacocc bench` of the node's preset on this machine right before the drive, with as
many points as the node feeds the network (the sweep x (lidar.sweeps + 1)) and the same torch thread
count, or a bench JSON given by the caller; the report's `targets` compare the drive against it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tacocc_core.config import load_preset
from tacocc_ros.tooling import drive_report
from tacocc_ros.tooling.drive_foxglove import GridRecorder, LiveClient, write_drive_mcap
from tacocc_ros.tooling.drive_source import DriveFrame
from tacocc_ros.tooling.load_driver import DriveOptions, LoadDriver, driver_node_params
from tacocc_ros.tooling.node_process import OccupancyNodeProcess, child_environment


@dataclass(frozen=True)
class SessionOptions:
    """Which node, which checkpoint, and the network timing to compare with."""

    checkpoint: str = "checkpoints/demo.pt"
    model_config: str = "demo"
    node_params: dict = field(default_factory=dict)  # overrides of driver_node_params
    start_node: bool = True
    node_pid: int | None = None  # an already running node (start_node False): its /proc entry for RSS
    bench: bool = True
    bench_json: str | None = None
    bench_frames: int = 30
    log_path: str | None = None
    mcap: str | None = None  # write the run's grids with the frame to this .mcap (drive_foxglove.py)
    mcap_period_s: float = 0.5  # at most one grid per this much LiDAR time goes into it
    foxglove_client: bool = False  # subscribe to every channel of the node's Foxglove bridge during the run
    node_module: str = "tacocc_ros.node.occupancy_node"  # what `python -m` runs (a benchmark's variant)


def run_bench(model_config: str, points: int, threads: int, out: Path, frames: int = 30) -> dict:
    """`tacocc bench` in a child process; its JSON report (stages.total holds p50_ms and p99_ms)."""
    env = child_environment()
    env["OMP_NUM_THREADS"] = str(threads)
    command = [
        sys.executable, "-m", "tacocc_ros.cli", "bench", "--config", model_config, "--frames", str(frames),
        "--warmup", "3", "--points-per-sweep", str(points), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tacocc bench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(out.read_text())


def network_timing(bench: dict) -> dict:
    total = bench["stages"]["total"]
    return {"p50_ms": float(total["p50_ms"]), "p99_ms": float(total["p99_ms"]), "bench": bench}


def drive(frame: DriveFrame, options: DriveOptions, session: SessionOptions, out_json: Path) -> dict:
    """Bench, drive, write `out_json` (and `<out_json stem>.png` with the RSS curve); the report dict."""
    out_json = Path(out_json)
    config = load_preset(session.model_config)
    params = driver_node_params("", session.checkpoint, options, {"model_config": session.model_config})
    params.update(session.node_params)
    threads = int(params.get("inference_threads", 0)) or len(os.sched_getaffinity(0))
    network = None
    recorder = GridRecorder(session.mcap_period_s) if session.mcap else None
    with tempfile.TemporaryDirectory(prefix="tacocc-drive-") as tmp:
        if session.bench_json:
            network = network_timing(json.loads(Path(session.bench_json).read_text()))
        elif session.bench:
            points = len(frame.points) * (config.lidar.sweeps + 1)
            bench_out = Path(tmp) / "bench.json"
            network = network_timing(run_bench(session.model_config, points, threads, bench_out, session.bench_frames))
        load_before = os.getloadavg()
        if session.start_node:
            params["calibration"] = str(frame.write_calibration(Path(tmp) / "calibration.yaml"))
            log = Path(session.log_path) if session.log_path else out_json.with_suffix(".node.log")
            with (
                OccupancyNodeProcess(params, log, module=session.node_module) as node,
                _live_client(session, params) as live,
            ):
                driver = LoadDriver(
                    frame,
                    options,
                    node_pid=node.pid,
                    alive=lambda: node.check_alive("during the drive"),
                    recorder=recorder,
                )
                report = driver.run()
                node_alive = node.running
            report["node_exit_code"] = node.returncode
            report["node_alive_at_end"] = node_alive
            report["node_log"] = str(log)
            report["node_log_lines"] = len(log.read_text(errors="replace").splitlines()) if log.is_file() else None
        else:
            with _live_client(session, params) as live:
                report = LoadDriver(frame, options, node_pid=session.node_pid, recorder=recorder).run()
        load_after = os.getloadavg()
    report["foxglove_client"] = live.report() if live is not None else None
    if recorder is not None and session.mcap:
        metadata = {"source": frame.source, "checkpoint": session.checkpoint, "model_config": session.model_config}
        report["mcap"] = write_drive_mcap(session.mcap, frame, recorder, config.grid.spec(), metadata)
    report["node_params"] = params if session.start_node else None
    report["network"] = None if network is None else {k: v for k, v in network.items() if k != "bench"}
    report["network_bench"] = None if network is None else network["bench"]
    report["targets"] = drive_report.targets(report, network, options.lidar_hz)
    report["load_average"] = {"before": list(load_before), "after": list(load_after)}
    report["cpus"] = len(os.sched_getaffinity(0))
    drive_report.write_json(out_json, report)
    if report["rss_mb"]:
        drive_report.plot_rss(report, out_json.with_suffix(".png"))
    return report


def _live_client(session: SessionOptions, params: dict) -> contextlib.AbstractContextManager:
    """A Foxglove client on the node's bridge (`--foxglove-client`), or nothing."""
    if not session.foxglove_client:
        return contextlib.nullcontext()
    port = int(params.get("foxglove_port", 0))
    if port <= 0:
        raise ValueError("--foxglove-client needs the node's Foxglove bridge: --param foxglove_port=<port>")
    return LiveClient(port)


def summary_lines(report: dict) -> list[str]:
    """The report in a few human lines (what `tacocc drive` prints)."""
    e2e, gap = report["latency_end_to_end_ms"], report["longest_gap_ms"]
    in_node = report["latency_in_node_ms"]["last_window"] or {}
    lines = [
        f"outputs: {report['outputs_in_window']} in {report['window_s'][1] - report['window_s'][0]:.0f} s "
        f"= {report['output_rate_hz']:.2f} Hz (published {report['published']['lidar']} sweeps)",
        "end-to-end latency ms: " + ", ".join(f"{k} {_ms(v)}" for k, v in e2e.items()),
        "in-node latency ms (last window): " + ", ".join(f"{k} {_ms(v)}" for k, v in in_node.items()),
        f"longest gap between outputs: {gap:.0f} ms at t={report['longest_gap_at_s']:.1f} s",
        f"dropped: {report['dropped'] or 'none'}; failed: {report['failed'] or 'none'}",
    ]
    rss = report["rss"]
    if rss["end_mb"] is not None:
        growth = rss["growth_after_settle_mb"]
        lines.append(
            f"node RSS MB: start {rss['start_mb']:.0f}, end {rss['end_mb']:.0f}, max {rss['max_mb']:.0f}"
            + (f", growth after 2 min {growth:.1f}" if growth is not None else "")
            + (f"; node CPU {report['node_cpu_percent']:.0f} %" if report["node_cpu_percent"] is not None else "")
            + (f", driver CPU {report['driver_cpu_percent']:.0f} %" if report["driver_cpu_percent"] is not None else "")
        )
    if report["faults_injected"]:
        lines.append(f"faults injected: {len(report['faults_injected'])}; counted on /diagnostics:")
        for fault, c in report["faults_counted"].items():
            lines.append(f"  {fault}: injected {c['injected']}, {c['counted'] or 'NOT COUNTED'}")
        lines.append(f"outputs after the last fault: {report['outputs_after_last_fault']}")
    if report.get("foxglove_client"):
        got = report["foxglove_client"]
        lines.append(
            f"Foxglove client: {sum(got['messages'].values())} messages, {sum(got['megabytes'].values()):.1f} MB "
            f"on {len(got['messages'])} topics"
        )
    if report.get("mcap"):
        lines.append(f"Foxglove recording: {report['mcap']['path']} ({report['mcap']['grids']} grids)")
    if report.get("generated_total"):
        lines.append(
            f"generated malformed messages: {report['generated_total']} of {sum(report['published'].values())} "
            f"published; outputs after the last one: {report['outputs_after_last_generated']}"
        )
    if report.get("tf_static"):
        lines.append(f"rig on /tf_static: {report['tf_static']}")
    if report.get("node_log_lines") is not None:
        lines.append(f"node log: {report['node_log_lines']} lines")
    lines.append(f"/diagnostics keys: max {report['diagnostics_keys']['max']}, end {report['diagnostics_keys']['end']}")
    if report["targets"]:
        t = report["targets"]
        lines.append(
            f"network (tacocc bench): p50 {t['network_p50_ms']:.1f} ms, p99 {t['network_p99_ms']:.1f} ms; targets: "
            f"e2e p99 <= {t['end_to_end_p99_limit_ms']:.0f} ms {_ok(t['end_to_end_p99_ok'])}, "
            f"gap <= {t['longest_gap_limit_ms']:.0f} ms {_ok(t['longest_gap_ok'])}, "
            f"rate >= {t['output_rate_needed_hz']:.2f} Hz {_ok(t['output_rate_ok'])}"
        )
    return lines


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"
