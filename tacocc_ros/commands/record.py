"""`tacocc record`: record the occupancy node's inputs (or given topics) into rosbag2 bags, no ROS install needed.

The logic lives in `tacocc_ros.recording` (topics, recorder, split writer). Ctrl-C or SIGTERM ends the
recording: what was received is written, the bag is closed and moved to its final name; a second signal
stops at once (the bag being written stays under its `.partial` name, never under the final one).
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """`1G`, `500M`, `64K`, `1048576` (binary units) -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a size such as 1G, 500M or 1048576, got {text!r}")
    return round(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "record",
        help="record the occupancy node's inputs (or --topics) into rosbag2 bags (mcap or sqlite3), no ROS install",
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="bag folder (with a split limit: folder of bags)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--topics", nargs="+", metavar="TOPIC", help="record these topics instead of the node's inputs")
    which.add_argument("--params-file", type=Path, default=None,
                       help="the occupancy node's ROS params file: its lidar/odom/camera topic names")  # fmt: skip
    p.add_argument("--config", default="nuscenes_r50_256x704",
                   help="model preset whose cameras are the node's (default nuscenes_r50_256x704)")  # fmt: skip
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--max-bag-size", type=byte_size, default=0, metavar="SIZE", help="split past SIZE (e.g. 1G)")
    p.add_argument("--max-bag-duration", type=_non_negative, default=0.0, metavar="S", help="split every S seconds")
    p.add_argument("--queue-size", type=byte_size, default=512 << 20, metavar="SIZE",
                   help="most message bytes waiting for the disk; newer ones are dropped (default 512M)")  # fmt: skip
    p.add_argument("--duration", type=_non_negative, default=0.0, metavar="S", help="stop after S s (0: at Ctrl-C)")
    p.set_defaults(run=run)


def _topics(args: argparse.Namespace) -> tuple[str, ...]:
    from tacocc_core.config import load_preset
    from tacocc_ros.recording.topics import check_topics, node_input_topics, params_file_values

    if args.topics:
        return check_topics(args.topics)
    overrides = params_file_values(args.params_file) if args.params_file else {}
    config = overrides.get("model_config", args.config) if args.params_file else args.config
    return node_input_topics(tuple(load_preset(str(config)).cameras.names), overrides)


def run(args: argparse.Namespace) -> int:
    try:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from tacocc_ros.node.spin import stop_on_signals
        from tacocc_ros.recording.recorder import Recorder, RecordOptions, summary_lines
        from tacocc_ros.recording.split_writer import RecordingError, SplitOptions, SplitWriter
        from tacocc_ros.recording.topics import TopicSelectionError
        from tacocc_ros.tooling.node_process import apply_ros_environment
    except ImportError as err:
        print(f"tacocc record: error: needs rclpy and the ROS 2 message packages ({err})", file=sys.stderr)
        return 2
    stop = threading.Event()
    try:
        topics = _topics(args)
        split = SplitOptions(args.out, args.storage, args.max_bag_size, round(args.max_bag_duration * 1e9))
        options = RecordOptions(topics, split, queue_bytes=args.queue_size)
        writer = SplitWriter(split)  # an existing output is refused here, before ROS starts
    except (TopicSelectionError, RecordingError, ValueError, OSError) as err:
        print(f"tacocc record: error: {err}", file=sys.stderr)
        return 1
    apply_ros_environment()
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    stop_on_signals(stop)
    node = recorder = None
    try:
        node = rclpy.create_node("tacocc_record", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        recorder = Recorder(node, options, writer)
        print(f"recording {len(topics)} topics into {args.out} (Ctrl-C to stop)", flush=True)
        end = time.monotonic() + args.duration if args.duration > 0 else None
        while not stop.is_set() and not recorder.failed.is_set():
            executor.spin_once(timeout_sec=0.1)
            if end is not None and time.monotonic() >= end:
                break
        report = recorder.finish()
    except (RecordingError, OSError) as err:
        print(f"tacocc record: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        partial = None if recorder is None else recorder.writer.partial
        where = f"; the bag being written stays in {partial}" if partial is not None else ""
        print(f"tacocc record: stopped at once{where}", file=sys.stderr)
        return 130
    finally:
        if recorder is None:  # ROS did not start: nothing was recorded, nothing is left behind
            writer.discard()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    for line in summary_lines(report):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tacocc_ros.commands.record ...`: the command alone (same options as `tacocc record`)."""
    parser = argparse.ArgumentParser(prog="tacocc")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["record", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
