"""`tacocc calibration`: write the node's calibration YAML from a nuScenes scene, a bag or a calib.json; check one.

    tacocc calibration --nuscenes DATAROOT --scene NAME [--version v1.0-mini] --out calibration.yaml
    tacocc calibration --bag BAG [--params-file node_params.yaml] --out calibration.yaml
    tacocc calibration --calib-json calib.json --out calibration.yaml
    tacocc calibration --check calibration.yaml [--config PRESET] [--out NEW]

Every source gives the rig transforms (`tacocc_core/rig/sources.py` says why a sample's `lidar2cam` is
not one). `--bag` reads the topics the occupancy node's parameters name (`--params-file`: the same ROS
params file the nodes take; default the converter's names). `--check FILE --out NEW` rewrites a file
(an old layout included) in the current layout. The written file is checked as `--check` does; the
exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibration",
        help="write the occupancy node's calibration YAML (rig transforms) from nuScenes, a bag or a calib.json; "
        "or --check one",
        description=__doc__.split("\n\n")[0],
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--nuscenes", type=Path, metavar="DATAROOT", help="a nuScenes-layout dataset (with --scene)")
    source.add_argument("--bag", type=Path, help="a rosbag2 bag: its /tf_static and camera_info (or calibration.yaml)")
    source.add_argument("--calib-json", type=Path, help="a calib.json as in the fixtures (lidar2ego, cam2ego, cam2img)")
    source.add_argument("--check", type=Path, metavar="FILE", help="check an existing calibration file")
    p.add_argument("--scene", help="scene name for --nuscenes (e.g. scene-0061)")
    p.add_argument("--version", default="v1.0-mini", help="nuScenes table folder for --nuscenes (default v1.0-mini)")
    p.add_argument("--out", type=Path, help="where to write the calibration YAML (required unless --check)")
    p.add_argument("--cameras", nargs="+", help="camera names to keep (default: all the source has)")
    p.add_argument(
        "--ego-frame", help="the vehicle frame in the bag's TF (default: the params file's ego_frame, else base_link)"
    )
    p.add_argument(
        "--params-file",
        type=Path,
        help="ROS params file of the nodes (`/**: ros__parameters:`): lidar_topic, ego_frame, "
        "cameras.<NAME>.info_topic name what --bag reads",
    )
    p.add_argument(
        "--config", help="model preset or YAML whose cameras must all be present (the node's `model_config`)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tacocc_core.rig.calibration_file import CalibrationError, load_calibration, save_calibration
    from tacocc_core.rig.check import check_rig

    required: tuple[str, ...] = ()
    if args.config:
        from tacocc_core.config import load_preset

        required = tuple(load_preset(args.config).cameras.names)
    try:
        if args.check is not None:
            rig, path = load_calibration(args.check, note=lambda line: print(line, file=sys.stderr)), args.check
            if args.out is not None:
                save_calibration(args.out, rig)
                print(f"wrote {args.out} (the current layout) from {args.check}")
                path = args.out
        else:
            if args.out is None:
                print("tacocc calibration: error: --out is required to write a file", file=sys.stderr)
                return 2
            rig = read_source(args)
            save_calibration(args.out, rig)
            path = args.out
            print(f"wrote {args.out}: LiDAR frame {rig.lidar_frame}, {len(rig.cameras)} cameras")
    except CalibrationError as err:
        print(f"tacocc calibration: error: {err}", file=sys.stderr)
        return 2
    results = check_rig(rig, required)
    print(f"checks of {path}:")
    for result in results:
        print("  " + result.line())
    failed = sum(not r.ok for r in results)
    print(f"{failed} of {len(results)} checks failed" if failed else f"all {len(results)} checks passed")
    return 1 if failed else 0


def read_source(args: argparse.Namespace):
    from tacocc_core.rig import sources
    from tacocc_core.rig.calibration_file import CalibrationError

    if args.nuscenes is not None:
        if not args.scene:
            raise CalibrationError("--nuscenes needs --scene NAME (one scene's calibrated_sensor records)")
        return sources.rig_from_nuscenes(sources.open_nuscenes(args.nuscenes, args.version), args.scene, args.cameras)
    if args.bag is not None:
        from tacocc_core.bags.topics import SensorTopics, read_params_file

        topics = SensorTopics()
        if args.params_file is not None:
            try:
                topics = SensorTopics.from_params(read_params_file(args.params_file))
            except ValueError as err:
                raise CalibrationError(str(err)) from None
        note = lambda line: print(line, file=sys.stderr)  # noqa: E731 - a one-line sink for notes
        return sources.rig_from_bag(args.bag, args.cameras, args.ego_frame, topics, note)
    return sources.rig_from_calib_json(args.calib_json, args.cameras)
