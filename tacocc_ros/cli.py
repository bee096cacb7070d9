"""The `tacocc` command: every `tacocc_core` command plus the ROS 2 ones (`play`, `record`, `reload`, `demo`, `drive`).

The ROS commands import rclpy only when they run, so `tacocc train` and the other core commands still work on
a machine without ROS packages.
"""

from __future__ import annotations

import sys

from tacocc_core import cli as core_cli
from tacocc_core.allocator import keep_freed_memory
from tacocc_ros.commands import demo, drive, play, record, reload

# The order `tacocc --help` shows: `play` and `record` beside the bag commands, then `reload`, `demo` and `drive` last.
COMMANDS = core_cli.COMMANDS[:5] + (play, record) + core_cli.COMMANDS[5:] + (reload, demo, drive)


def build_parser():
    return core_cli.build_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # the console script's process: see tacocc_core.allocator
    return core_cli.main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
