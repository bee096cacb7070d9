"""`tacocc convert-nuscenes`: one rosbag2 per nuScenes scene (see `tacocc_core.bags.convert`)."""

from __future__ import annotations

import argparse
import sys
import time

from tacocc_core.labels import LabelFileError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert-nuscenes", help="write one rosbag2 per nuScenes scene")
    p.add_argument("--dataroot", required=True, help="nuScenes folder (real, or generate-scenes output)")
    p.add_argument("--version", default="v1.0-mini", help="table folder, as NuScenes(version=...)")
    p.add_argument("--out", required=True, help="folder for the bags (one sub-folder per scene)")
    p.add_argument("--scenes", nargs="+", metavar="NAME", help="scene names (default: all)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--labels", choices=("surroundocc", "occ3d", "none"), default="surroundocc")
    p.add_argument("--label-root", help="label folder (default: <dataroot>/surroundocc or <dataroot>/gts)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: nuscenes-devkit is slow to import, which no other command should pay.
    from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
    from tacocc_core.bags.reading import BagError
    from tacocc_core.data.nuscenes_reader import DataError

    options = ConvertOptions(
        storage=args.storage, labels=args.labels, label_root=args.label_root, progress=not args.no_progress
    )
    start = time.perf_counter()
    try:
        bags = convert_nuscenes(args.dataroot, args.version, args.out, args.scenes, options)
    except (DataError, LabelFileError, BagError, FileExistsError, ValueError) as err:
        print(f"tacocc convert-nuscenes: error: {err}", file=sys.stderr)
        return 2
    for bag in bags:
        print(bag)
    print(f"wrote {len(bags)} bags in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
