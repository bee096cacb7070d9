"""`tacocc generate-scenes`: write synthetic driving scenes as a nuScenes-layout dataset."""

from __future__ import annotations

import argparse
import os
import sys
import time

from tacocc_core.data.synthetic.domain import Domain, load_domain
from tacocc_core.data.synthetic.writer import GenerateOptions, generate_dataset


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 400x225, got {text!r}") from None
    return w, h


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate-scenes", help="write synthetic scenes that nuscenes-devkit loads")
    p.add_argument("--out", required=True, help="output folder (must not exist)")
    p.add_argument("--scenes", type=int, default=2)
    p.add_argument("--keyframes", type=int, default=20, help="keyframes (2 Hz) per scene")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=_size, default=(400, 225), metavar="WxH")
    p.add_argument("--version", default="v1.0-mini", help="table folder name given to NuScenes(version=...)")
    p.add_argument("--sweeps", type=int, default=9, help="non-key LiDAR sweeps (20 Hz) before each keyframe")
    p.add_argument("--lidar-azimuths", type=int, default=1084, help="LiDAR firings per revolution")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (one scene each)")
    p.add_argument(
        "--calib",
        default=os.environ.get("TACOCC_CALIB") or None,
        help="rig calibration in the layout of a nuScenes calibration dump (calib.json), e.g. a real car's; "
        "default: the built-in six-camera rig ($TACOCC_CALIB overrides the default)",
    )
    p.add_argument(
        "--domain",
        default=None,
        help="YAML of the recording domain (colours, lighting, LiDAR beams and intensity scale, camera mount; "
        "see config/domains/); default: the built-in domain",
    )
    p.add_argument(
        "--val-scenes", type=int, default=None, help="scenes of the val split (the last ones); default: a fifth"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        domain = load_domain(args.domain) if args.domain else Domain()
    except (ValueError, FileNotFoundError) as err:
        print(f"tacocc generate-scenes: error: {err}", file=sys.stderr)
        return 2
    opts = GenerateOptions(
        scenes=args.scenes,
        keyframes=args.keyframes,
        seed=args.seed,
        image_size=args.image_size,
        version=args.version,
        sweeps_per_keyframe=args.sweeps,
        lidar_azimuths=args.lidar_azimuths,
        workers=args.workers,
        val_scenes=args.val_scenes,
        domain=domain,
    )
    start = time.perf_counter()
    try:
        out = generate_dataset(args.out, opts, args.calib)
    except (ValueError, FileExistsError) as err:  # bad options, bad calibration file, existing output
        print(f"tacocc generate-scenes: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {opts.scenes} scenes x {opts.keyframes} keyframes to {out} in {time.perf_counter() - start:.1f} s")
    return 0
