"""`tacocc play BAG`: publish a bag into DDS at recorded timing (the rclpy part lives in `tacocc_ros.bags.player`)."""

from __future__ import annotations

import argparse
import sys


def _rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"rate must be > 0, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("play", help="replay a rosbag2 bag into ROS 2 with rclpy (no ros2 bag needed)")
    p.add_argument("bag", help="bag folder (or .mcap / .db3 file)")
    p.add_argument("--rate", type=_rate, default=1.0, help="speed factor (default 1.0)")
    p.add_argument("--loop", action="store_true", help="start again at the end until Ctrl-C")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default: all)")
    p.add_argument(
        "--wait-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds until every played topic has a subscriber",
    )
    p.add_argument("--delay", type=float, default=0.0, metavar="S", help="then wait S seconds before the first message")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # ROS is imported only here, so that every other command works without it.
    try:
        from tacocc_ros.bags.player import run_play
    except ImportError as err:
        print(f"tacocc play: error: needs rclpy and the ROS 2 message packages ({err})", file=sys.stderr)
        return 2
    return run_play(args)
