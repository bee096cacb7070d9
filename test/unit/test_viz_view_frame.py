"""tacocc_core.viz.view_frame: forward up, right to the right, for both nuScenes frames."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.viz.view_frame import EGO_FORWARD, FORWARDS, LIDAR_FORWARD, check_forward, orient_columns, to_display


def test_lidar_frame_forward_is_plus_y_and_right_is_plus_x():
    shown = to_display(np.array([[1.0, 2.0, 3.0]]), LIDAR_FORWARD)
    np.testing.assert_allclose(shown, [[1.0, 2.0, 3.0]])


def test_ego_frame_forward_is_plus_x_and_right_is_minus_y():
    # nuScenes ego: y points left, so a point 2 m to the left (y = +2) is 2 m to the left on screen.
    shown = to_display(np.array([[5.0, 2.0, 1.0]]), EGO_FORWARD)
    np.testing.assert_allclose(shown, [[-2.0, 5.0, 1.0]])


@pytest.mark.parametrize("forward", FORWARDS)
def test_orient_columns_puts_the_forward_cell_on_top_and_the_right_cell_at_the_right(forward):
    f_axis, f_sign, r_axis, r_sign = check_forward(forward)
    a = np.zeros((5, 7), dtype=np.uint8)
    front = [2, 3]
    front[f_axis] = a.shape[f_axis] - 1 if f_sign > 0 else 0
    a[tuple(front)] = 1
    right = [2, 3]
    right[r_axis] = a.shape[r_axis] - 1 if r_sign > 0 else 0
    a[tuple(right)] = 2
    img = orient_columns(a, forward)
    assert (img[0] == 1).any(), "the forward-most cell is not in the top row"
    assert (img[:, -1] == 2).any(), "the right-most cell is not in the last column"


@pytest.mark.parametrize("forward", FORWARDS)
def test_right_is_forward_cross_up(forward):
    f_axis, f_sign, r_axis, r_sign = check_forward(forward)
    f = np.zeros(3)
    f[f_axis] = f_sign
    r = np.zeros(3)
    r[r_axis] = r_sign
    np.testing.assert_allclose(np.cross(f, [0, 0, 1]), r)


def test_unknown_forward_axis_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="'z'"):
        check_forward("z")
