"""The `tacocc` command line: one subcommand per module under `tacocc_core.commands`."""

from __future__ import annotations

import argparse
import sys

from tacocc_core.commands import (
    bench,
    convert_nuscenes,
    demo,
    evaluate,
    export,
    generate_scenes,
    play,
    render,
    show_config,
    show_labels,
    train,
)
from tacocc_core.config import ConfigError
from tacocc_core.labels import LabelFileError

# Listed explicitly, in the order `tacocc --help` shows them.
COMMANDS = (show_config, show_labels, generate_scenes, convert_nuscenes, play, train, evaluate, export, bench, render)
COMMANDS += (demo,)

# Errors that mean "bad input": printed as one clear line, exit status 2, no traceback.
USER_ERRORS = (ConfigError, LabelFileError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tacocc", description="TACOcc 3D semantic occupancy: data, training, tools")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as err:
        print(f"tacocc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
