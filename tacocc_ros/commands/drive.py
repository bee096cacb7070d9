"""`tacocc drive`: publish a real frame into the occupancy node at sensor rates, with faults, and measure it.

The logic lives in `tacocc_ros.tooling.load_driver` (publisher, faults, listener) and
`tacocc_ros.tooling.drive_session` (bench, node process, report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    import yaml

    return name, yaml.safe_load(value)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "drive",
        help="load-test the occupancy node: a real frame at nuScenes rates (+ faults), latency, gaps, drops, RSS",
    )
    p.add_argument("--frame", type=Path, default=None, help="nuScenes fixture folder (default ../shared/fixtures/...)")
    p.add_argument("--bag", type=Path, default=None, help="take the frame from a converted bag instead")
    p.add_argument("--out", type=Path, default=Path("runs/drive/drive.json"), help="report JSON (PNG beside it)")
    p.add_argument("--duration", type=_positive, default=60.0, help="seconds of publishing (default 60)")
    p.add_argument("--warmup", type=float, default=10.0, help="first seconds left out of the figures (default 10)")
    p.add_argument("--lidar-hz", type=_positive, default=20.0)
    p.add_argument("--camera-hz", type=_positive, default=12.0)
    p.add_argument("--odom-hz", type=_positive, default=50.0)
    p.add_argument("--faults", nargs="+", default=[], metavar="FAULT", help="'all' or fault names (faults.py)")
    p.add_argument("--fault-every", type=_positive, default=3.0, metavar="S", help="seconds between faults")
    p.add_argument("--fault-repeat", type=int, default=2, metavar="N", help="good messages each fault replaces")
    p.add_argument("--faults-until", type=float, default=None, metavar="S", help="no fault after S seconds")
    p.add_argument(
        "--generated",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="replace this share of every stream's messages by generated malformed ones (e.g. 0.1)",
    )
    p.add_argument("--raw-camera", default="CAM_BACK_RIGHT", help="camera published as a raw Image ('none': none)")
    p.add_argument("--checkpoint", default="checkpoints/demo.pt")
    p.add_argument("--config", default="demo", help="the node's model preset (that of the checkpoint)")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="a node parameter for the node started here (repeatable)")  # fmt: skip
    p.add_argument("--no-start", action="store_true", help="drive a node that is already running")
    p.add_argument("--node-pid", type=int, default=None, help="with --no-start: its pid, for RSS")
    p.add_argument("--output-topic", default=None, help="the node's occupancy PointCloud2 topic")
    p.add_argument("--no-bench", action="store_true", help="skip `tacocc bench` (no targets in the report)")
    p.add_argument("--bench-json", default=None, help="read the network timing from this `tacocc bench --out` file")
    p.add_argument("--bench-frames", type=int, default=30)
    p.add_argument("--mcap", type=Path, default=None, help="Foxglove recording of the run (default: beside --out)")
    p.add_argument("--no-mcap", action="store_true", help="write no Foxglove recording")
    p.add_argument("--mcap-period", type=float, default=0.5, metavar="S", help="at most one grid per S s in it")
    p.add_argument("--foxglove-client", action="store_true",
                   help="subscribe to the node's Foxglove bridge (with --param foxglove_port=N)")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from tacocc_core.config import load_preset
        from tacocc_ros.tooling import drive_session, faults
        from tacocc_ros.tooling.drive_source import (
            DriveSourceError,
            default_fixture,
            frame_from_bag,
            frame_from_fixture,
        )
        from tacocc_ros.tooling.load_driver import DEFAULT_OUTPUT_TOPIC, DriveOptions
        from tacocc_ros.tooling.node_process import NodeProcessError
    except ImportError as err:
        print(f"tacocc drive: error: needs rclpy and the ROS 2 message packages ({err})", file=sys.stderr)
        return 2
    try:
        fault_names = faults.check_faults(args.faults) if args.faults else ()
        raw = None if args.raw_camera.lower() == "none" else args.raw_camera
        options = DriveOptions(
            duration_s=args.duration, warmup_s=args.warmup, lidar_hz=args.lidar_hz, camera_hz=args.camera_hz,
            odom_hz=args.odom_hz, faults=fault_names, fault_every_s=args.fault_every, faults_until_s=args.faults_until,
            fault_repeat=args.fault_repeat, generated_fraction=args.generated,
            raw_camera=raw, output_topic=args.output_topic or DEFAULT_OUTPUT_TOPIC,
        )  # fmt: skip
        if raw is None and "wrong_step" in fault_names:
            raise ValueError("the wrong_step fault needs a --raw-camera")
        if args.bag is not None:
            frame, _ = frame_from_bag(args.bag, tuple(load_preset(args.config).cameras.names))
        else:
            frame = frame_from_fixture(args.frame or default_fixture())
        session = drive_session.SessionOptions(
            checkpoint=args.checkpoint, model_config=args.config, node_params=dict(args.param),
            start_node=not args.no_start, node_pid=args.node_pid, bench=not args.no_bench,
            bench_json=args.bench_json, bench_frames=args.bench_frames,
            mcap=None if args.no_mcap else str(args.mcap or args.out.with_suffix(".mcap")),
            mcap_period_s=args.mcap_period, foxglove_client=args.foxglove_client,
        )  # fmt: skip
        report = drive_session.drive(frame, options, session, args.out)
    except (ValueError, DriveSourceError, NodeProcessError, RuntimeError, TimeoutError, OSError) as err:
        print(f"tacocc drive: error: {err}", file=sys.stderr)
        return 1
    for line in drive_session.summary_lines(report):
        print(line)
    print(f"wrote {args.out}")
    return 0
