"""tacocc_core.viz.figure: bird's-eye and 3D rows for each grid, titled, with one legend."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import PALETTE
from tacocc_core.viz.bev import BevStyle
from tacocc_core.viz.figure import grid_figure

GRID = GridSpec.from_ranges((-10.0, 10.0), (-10.0, 10.0), (-2.0, 2.0), 1.0)


def _grids():
    pred = np.zeros(GRID.shape, dtype=np.uint8)
    gt = np.zeros(GRID.shape, dtype=np.uint8)
    pred[:, :, 0] = gt[:, :, 0] = 11
    pred[14:16, 12:15, 1:3] = 4
    gt[4:6, 12:15, 1:3] = 10
    return pred, gt


@pytest.mark.parametrize("view", ["bev", "3d", "both"])
def test_views_give_one_row_each_and_both_halves(view):
    pred, gt = _grids()
    flat = BevStyle(height_shading=False)
    fig = grid_figure([pred, gt], ["prediction", "ground truth"], GRID, "+y", view=view, bev_style=flat)
    half = fig.shape[1] // 2
    car_left = np.all(fig[:, :half] == PALETTE[4], axis=2).sum()
    truck_right = np.all(fig[:, half:] == PALETTE[10], axis=2).sum()
    assert car_left > 30 and truck_right > 30
    one = grid_figure([pred], ["prediction"], GRID, "+y", view=view)
    assert one.shape[1] < fig.shape[1]


def test_both_views_are_taller_than_either():
    pred, _ = _grids()
    heights = {v: grid_figure([pred], ["p"], GRID, "+y", view=v).shape[0] for v in ("bev", "3d", "both")}
    assert heights["both"] > max(heights["bev"], heights["3d"])


def test_bad_requests_are_rejected():
    pred, _ = _grids()
    with pytest.raises(ValueError, match="'side'"):
        grid_figure([pred], ["p"], GRID, "+y", view="side")
    with pytest.raises(ValueError, match="one title per grid"):
        grid_figure([pred, pred], ["p"], GRID, "+y")
    with pytest.raises(ValueError, match=r"'b' \(20, 20, 3\)"):
        grid_figure([pred, pred[:, :, :3].copy()], ["a", "b"], GRID, "+y")
