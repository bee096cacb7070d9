"""`tacocc render`: a picture of a label grid or a prediction, optionally beside its ground truth.

Reads SurroundOcc `.npy`, Occ3D `.npz` or dense prediction `.npy` files (`tacocc_core.viz.grid_io`)
and writes one PNG with bird's-eye and/or 3D views in the class palette (`tacocc_core.viz.figure`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tacocc_core.config import PRESETS
from tacocc_core.labels import LabelFileError
from tacocc_core.viz.bev import BevStyle
from tacocc_core.viz.figure import VIEWS, grid_figure
from tacocc_core.viz.grid_io import grid_for_preset, read_grid
from tacocc_core.viz.image_io import write_png


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("render", help="draw a label grid or prediction (bird's-eye and 3D views) as a PNG")
    p.add_argument("grid", type=Path, help="SurroundOcc .npy, Occ3D labels.npz, or a dense prediction .npy")
    p.add_argument("--gt", type=Path, default=None, help="a ground-truth grid to draw beside it (same shape)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--view", choices=VIEWS, default="both", help="bird's-eye, 3D, or both (default)")
    p.add_argument(
        "--grid",
        dest="preset",
        default=None,
        help=f"the grid of .npy files: a preset ({', '.join(PRESETS)}) or a config .yaml "
        "(default: SurroundOcc's for (N, 4) files, the preset matching a dense grid's shape)",
    )
    p.add_argument("--flat", action="store_true", help="no height shading in the bird's-eye view")
    p.add_argument("--no-camera-mask", action="store_true", help="Occ3D: keep voxels outside the cameras' view")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".png":
        raise LabelFileError(f"--out {args.out}: the picture is written as PNG; name it *.png")
    spec = grid_for_preset(args.preset) if args.preset else None
    mask = not args.no_camera_mask
    loaded = [read_grid(args.grid, spec, mask)]
    if args.gt is not None:
        loaded.append(read_grid(args.gt, spec, mask))
        pred, gt = loaded
        if pred.labels.shape != gt.labels.shape:
            raise LabelFileError(
                f"{pred.path} has shape {pred.labels.shape} but --gt {gt.path} has {gt.labels.shape}; "
                "they must be on the same grid"
            )
        if pred.grid != gt.grid or pred.forward != gt.forward:
            raise LabelFileError(
                f"{pred.path} is a {pred.kind} grid in the {pred.frame} frame but --gt {gt.path} is a {gt.kind} "
                f"grid in the {gt.frame} frame; they cannot be compared voxel by voxel"
            )
    titles = [f"{g.path.name}" for g in loaded]
    if len(loaded) == 2:
        titles = [f"prediction: {titles[0]}", f"ground truth: {titles[1]}"]
    first = loaded[0]
    picture = grid_figure(
        [g.labels for g in loaded],
        titles,
        first.grid,
        first.forward,
        view=args.view,
        bev_style=BevStyle(height_shading=not args.flat),
    )
    write_png(args.out, picture)
    size = f"{picture.shape[1]}x{picture.shape[0]}"
    print(f"{args.out}: {size} ({first.kind}, {first.frame} frame, grid {first.grid.shape})")
    return 0
