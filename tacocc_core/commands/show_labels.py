"""`tacocc labels`: the class table (id, name, RGB colour)."""

from __future__ import annotations

import argparse

from tacocc_core.labels import CLASS_NAMES, IGNORE, IGNORE_COLOUR, PALETTE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("labels", help="print the occupancy classes and their colours")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for class_id, name in enumerate(CLASS_NAMES):
        r, g, b = PALETTE[class_id].tolist()
        print(f"{class_id:>3}  {name:<22} #{r:02x}{g:02x}{b:02x}")
    r, g, b = IGNORE_COLOUR.tolist()
    print(f"{IGNORE:>3}  {'ignore':<22} #{r:02x}{g:02x}{b:02x}")
    return 0
