"""One picture of a grid (or a prediction beside its ground truth): bird's-eye and/or 3D views, one legend.

What `tacocc render` writes and what the demo draws for each frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from tacocc_core.geometry import GridSpec
from tacocc_core.viz.bev import BevStyle, bev_image, check_labels
from tacocc_core.viz.layout import classes_present, hstack, legend, pad, titled, vstack
from tacocc_core.viz.voxels3d import View3D, render_voxels

View = Literal["bev", "3d", "both"]
VIEWS: tuple[str, ...] = ("bev", "3d", "both")


def grid_figure(
    grids: Sequence[np.ndarray],
    titles: Sequence[str],
    grid: GridSpec,
    forward: str,
    view: View = "both",
    bev_style: BevStyle | None = None,
    view3d: View3D | None = None,
) -> np.ndarray:
    """Panels side by side, one per grid (e.g. prediction, ground truth), with one legend below.

    Bird's-eye views on one row, 3D views on the next (`view` picks), a title over each panel, and the
    legend of the classes present in any grid.

    Args:
        grids: (X, Y, Z) uint8 label grids of one shape, all on `grid`.
        titles: one per grid.
        forward: the grid axis pointing forward ("+y" LiDAR frame, "+x" ego frame).

    Returns:
        (H, W, 3) uint8 RGB picture.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    if not grids or len(grids) != len(titles):
        raise ValueError(f"need one title per grid, got {len(grids)} grids and {len(titles)} titles")
    grids = [check_labels(g, f"grid {t!r}") for g, t in zip(grids, titles, strict=True)]
    shapes = [g.shape for g in grids]
    if len(set(shapes)) != 1:
        pairs = ", ".join(f"{t!r} {s}" for t, s in zip(titles, shapes, strict=True))
        raise ValueError(f"grids differ in shape: {pairs}")
    rows = []
    if view in ("bev", "both"):
        rows.append(
            hstack([titled(bev_image(g, grid, forward, bev_style), t) for g, t in zip(grids, titles, strict=True)])
        )
    if view in ("3d", "both"):
        bev_width = rows[0].shape[1] // len(grids) if rows else None
        v3 = view3d or (View3D(width=max(400, bev_width)) if bev_width else View3D())
        suffix = " (3D)" if view == "both" else ""
        rows.append(
            hstack(
                [titled(render_voxels(g, grid, forward, v3), t + suffix) for g, t in zip(grids, titles, strict=True)]
            )
        )
    body = vstack(rows)
    return pad(vstack([body, legend(classes_present(grids), body.shape[1])], gap=4), 8)
