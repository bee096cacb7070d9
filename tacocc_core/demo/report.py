"""`write_demo_report`: a replay recording + its bag -> frames/*.png, demo.gif, report.md, report.json.

Everything is drawn into a hidden staging folder inside the output folder and moved into place when
complete, the report files last: a folder with `report.json` holds a finished report, and a run that
fails leaves the previous report as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tacocc_core.config import NUSCENES_CAMERAS
from tacocc_core.demo.bag_images import nearest_camera_images
from tacocc_core.demo.markdown import report_markdown
from tacocc_core.demo.numbers import DemoNumbers, demo_numbers
from tacocc_core.demo.pictures import frame_picture, shrink
from tacocc_core.demo.provenance import Provenance
from tacocc_core.geometry import GridSpec
from tacocc_core.recording import Recording
from tacocc_core.rig.calibration_file import FILE_NAME as CALIBRATION_FILE
from tacocc_core.rig.calibration_file import load_calibration
from tacocc_core.viz.animation import write_gif
from tacocc_core.viz.image_io import write_png

FRAMES_DIR = "frames"
ANIMATION_FILE = "demo.gif"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
OUTPUTS = (FRAMES_DIR, ANIMATION_FILE, REPORT_MD, REPORT_JSON)  # the order they are moved into place


@dataclass(frozen=True)
class ReportOptions:
    """How the report is drawn.

    Args:
        width: width of the camera mosaic and of the grid views in each frame picture, pixels.
        gif_width: frames of the animation are scaled down to at most this width.
        fps: animation frames per second.
        cameras: the camera channels to show (all six nuScenes ones by default).
    """

    width: int = 1200
    gif_width: int = 800
    fps: float = 2.0
    cameras: tuple[str, ...] = NUSCENES_CAMERAS


@dataclass(frozen=True)
class DemoReport:
    """Where the report landed and what it says."""

    out_dir: Path
    frames: tuple[Path, ...]
    animation: Path
    markdown: Path
    json: Path
    numbers: DemoNumbers


def frame_name(index: int, stamp_ns: int) -> str:
    """`frames/<index>_<stamp>.png` name of the index-th received frame."""
    return f"{index:04d}_{stamp_ns}.png"


def write_demo_report(
    recording: Recording,
    bag: str | os.PathLike[str],
    grid: GridSpec,
    out_dir: str | os.PathLike[str],
    provenance: Provenance,
    options: ReportOptions = ReportOptions(),
    baseline: dict[int, np.ndarray] | None = None,
) -> DemoReport:
    """Write the report of `recording` (replayed from `bag`, grids on `grid`) into `out_dir`.

    `baseline`: LiDAR accumulation grids per stamp (tacocc_core.lidar_baseline), scored beside the network.

    Raises:
        ValueError: the recording has no received grid, or its grids are not on `grid`.
        BagError: the bag lacks a camera image topic or holds an image that does not decode.
    """
    if not recording.received_stamps:
        raise ValueError(
            f"recording of {recording.bag}: the node published no grid "
            f"({len(recording.expected_stamps)} expected, node exit code {recording.node_exit_code})"
        )
    numbers = demo_numbers(recording, grid, baseline)
    bag = Path(bag)
    rig = load_calibration(bag / CALIBRATION_FILE) if (bag / CALIBRATION_FILE).is_file() else None
    stamps = [f.stamp_ns for f in numbers.frames]
    images = nearest_camera_images(bag, stamps, options.cameras)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        names = [f"{FRAMES_DIR}/{frame_name(i, s)}" for i, s in enumerate(stamps)]
        animation = []
        for i, (frame, name) in enumerate(zip(numbers.frames, names, strict=True)):
            title = f"frame {i}  stamp {frame.stamp_ns} ns"
            if frame.scores is not None:
                title += f"  IoU {100 * frame.scores.geometry_iou:.1f}%  mIoU {100 * frame.scores.miou:.1f}%"
            picture = frame_picture(
                title,
                recording.preds[frame.stamp_ns],
                recording.gts.get(frame.stamp_ns),
                grid,
                images[frame.stamp_ns],
                rig,
                options.width,
            )
            write_png(staging / name, picture)
            animation.append(shrink(picture, options.gif_width))
        write_gif(staging / ANIMATION_FILE, animation, fps=options.fps)
        markdown = report_markdown(numbers, provenance, names, ANIMATION_FILE)
        (staging / REPORT_MD).write_text(markdown)
        payload = {"numbers": numbers.to_dict(), "provenance": provenance.to_dict(), "frames": names}
        (staging / REPORT_JSON).write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
        _move_into_place(staging, out, OUTPUTS)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DemoReport(
        out_dir=out,
        frames=tuple(out / n for n in names),
        animation=out / ANIMATION_FILE,
        markdown=out / REPORT_MD,
        json=out / REPORT_JSON,
        numbers=numbers,
    )


def _move_into_place(staging: Path, out: Path, entries: Sequence[str]) -> None:
    """Replace each `out/<entry>` by `staging/<entry>`, in order (an old folder is renamed away first).

    The last entry (the report's JSON, the mark of a finished report) is removed before anything moves.
    """
    (out / entries[-1]).unlink(missing_ok=True)
    for entry in entries:
        target = out / entry
        if target.is_dir():
            old = staging / f".old-{entry}"
            target.rename(old)
        os.replace(staging / entry, target)
