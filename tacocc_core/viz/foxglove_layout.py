"""The Foxglove app layout shipped as `foxglove_layout/tacocc_layout.json`, built with `foxglove.layouts`.

A 3D panel following the LiDAR frame (the predicted grid in its class colours from the VoxelGrid's
rgba fields, the ground truth, hidden until switched on, and the sweep coloured by intensity) above the six
cameras in two rows (front: left, front, right; back: left, back, right), the topics of foxglove_messages.py.

    python -m tacocc_core.viz.foxglove_layout foxglove_layout/tacocc_layout.json          # write (after a change)
    python -m tacocc_core.viz.foxglove_layout --check foxglove_layout/tacocc_layout.json  # the shipped file is current
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import foxglove.layouts as fl

from tacocc_core.viz.foxglove_messages import GROUND_TRUTH_TOPIC, LIDAR_TOPIC, OCCUPANCY_TOPIC, camera_topic

FRONT = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT")
BACK = ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")


def _camera_row(cameras: Sequence[str]) -> fl.SplitContainer:
    panels = []
    for camera in cameras:
        config = fl.ImageConfig(image_mode=fl.ImageModeConfig(image_topic=camera_topic(camera)))
        panels.append(fl.SplitItem(content=fl.ImagePanel(title=camera, config=config)))
    return fl.SplitContainer(direction="row", items=panels)


def tacocc_layout(lidar_frame: str = "LIDAR_TOP") -> fl.Layout:
    """The layout (module docstring); the 3D view follows `lidar_frame`."""
    scene = fl.ThreeDeePanel(
        title="occupancy",
        config=fl.ThreeDeeConfig(
            follow_tf=lidar_frame,
            topics={
                OCCUPANCY_TOPIC: fl.BaseRendererVoxelGridTopicSettings(visible=True, color_mode="rgba-fields"),
                GROUND_TRUTH_TOPIC: fl.BaseRendererVoxelGridTopicSettings(visible=False, color_mode="rgba-fields"),
                LIDAR_TOPIC: fl.BaseRendererPointCloudTopicSettings(
                    visible=True, point_size=2.0, color_mode="colormap", color_map="turbo", color_field="intensity"
                ),
            },
        ),
    )
    cameras = fl.SplitContainer(
        direction="column",
        items=[fl.SplitItem(content=_camera_row(FRONT)), fl.SplitItem(content=_camera_row(BACK))],
    )
    return fl.Layout(
        content=fl.SplitContainer(
            direction="column",
            items=[fl.SplitItem(proportion=3, content=scene), fl.SplitItem(proportion=2, content=cameras)],
        )
    )


def layout_json() -> str:
    """The layout file's text: indented JSON with a final newline."""
    return json.dumps(json.loads(tacocc_layout().to_json()), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write or check the shipped Foxglove layout")
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the code")
    args = parser.parse_args(argv)
    text = layout_json()
    if args.check:
        if not args.path.is_file() or args.path.read_text() != text:
            print(f"{args.path} differs from tacocc_core/viz/foxglove_layout.py: rewrite it", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.path.with_name(f".{args.path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
