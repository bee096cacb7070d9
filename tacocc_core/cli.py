"""The ROS-free half of the `tacocc` command line: one subcommand per module under `tacocc_core.commands`.

The `tacocc` console script is `tacocc_ros.cli`, which adds the commands that need ROS (`play`, `demo`).
`python -m tacocc_core.cli` offers the commands here alone, on a machine without ROS packages.
"""

from __future__ import annotations

import argparse
import sys

from tacocc_core.commands import (
    bench,
    calibration,
    class_weights,
    convert_nuscenes,
    evaluate,
    export,
    generate_scenes,
    recipe,
    render,
    show_config,
    show_labels,
    train,
)
from tacocc_core.config import ConfigError
from tacocc_core.labels import LabelFileError

# Listed explicitly, in the order `tacocc --help` shows them.
COMMANDS = (
    show_config,
    show_labels,
    generate_scenes,
    convert_nuscenes,
    calibration,
    train,
    recipe,
    evaluate,
    export,
    bench,
    render,
    class_weights,
)

# Errors that mean "bad input": printed as one clear line, exit status 2, no traceback.
USER_ERRORS = (ConfigError, LabelFileError, FileNotFoundError)


def build_parser(commands: tuple = COMMANDS) -> argparse.ArgumentParser:
    """One subparser per command module; each module has `add_parser(subparsers)`."""
    parser = argparse.ArgumentParser(prog="tacocc", description="TACOcc 3D semantic occupancy: data, training, tools")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None, commands: tuple = COMMANDS) -> int:
    args = build_parser(commands).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as err:
        print(f"tacocc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from tacocc_core.allocator import keep_freed_memory

    keep_freed_memory()
    sys.exit(main())
