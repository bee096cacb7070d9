"""The `tacocc` command: every `tacocc_core` command plus the ones that run ROS 2 (`play`, `record`, `demo`, `drive`).

The ROS commands import rclpy only when they run, so `tacocc train` and the other core commands still work on
a machine without ROS packages.
"""

from __future__ import annotations

import sys

from tacocc_core import cli as core_cli
from tacocc_core.allocator import keep_freed_memory
from tacocc_ros.commands import demo, drive, play, record

# The order `tacocc --help` shows: `play` and `record` beside the bag commands, then `demo` and `drive` last.
COMMANDS = core_cli.COMMANDS[:5] + (play, record) + core_cli.COMMANDS[5:] + (demo, drive)


def build_parser():
    return core_cli.build_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # the console script's process: see tacocc_core.allocator
    return core_cli.main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
