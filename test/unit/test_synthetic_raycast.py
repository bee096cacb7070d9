import json

import numpy as np
import pytest

from tacocc_core.data.synthetic.primitives import BOX, CYLINDER, ELLIPSOID, Parts, inside_part, intersect_part
from tacocc_core.data.synthetic.raycast import PinholeGrid, SpinningGrid, cast
from tacocc_core.data.synthetic.street import build_street
from tacocc_core.reference.raycast import cast_brute_force


@pytest.fixture(scope="module")
def street():
    return build_street(np.random.default_rng(5), 3.0, (100.0, 100.0))


@pytest.mark.parametrize("t", [0.0, 1.5])
def test_culled_lidar_cast_matches_brute_force(street, t):
    lidar2street = street.ego2street(t) @ np.array([[0, 1, 0, 0.94], [-1, 0, 0, 0], [0, 0, 1, 1.84], [0, 0, 0, 1.0]])
    grid = SpinningGrid(np.deg2rad(np.linspace(10.67, -30.67, 32)), 180, lidar2street)
    parts = street.parts_at(t)
    fast = cast(grid, parts, max_range=70.0)
    slow = cast_brute_force(grid.origin, grid.dirs.reshape(-1, 3), parts, max_range=70.0)
    np.testing.assert_array_equal(fast.part, slow.part)
    np.testing.assert_allclose(fast.t, slow.t)
    assert (fast.part >= 0).sum() > 100  # objects and scenery are actually hit


@pytest.mark.parametrize("camera", ["CAM_FRONT", "CAM_BACK_LEFT"])
def test_culled_camera_cast_matches_brute_force(street, nuscenes_frame_dir, camera):
    cam = json.loads((nuscenes_frame_dir / "calib.json").read_text())["cameras"][camera]
    k = np.array(cam["cam2img"]) * np.array([[0.05], [0.05], [1.0]])
    grid = PinholeGrid(k, street.ego2street(0.5) @ np.array(cam["cam2ego"]), (45, 80))
    parts = street.parts_at(0.5)
    fast = cast(grid, parts)
    slow = cast_brute_force(grid.origin, grid.dirs.reshape(-1, 3), parts)
    np.testing.assert_array_equal(fast.part, slow.part)
    assert len(np.unique(fast.label)) >= 4


@pytest.mark.parametrize("kind", [BOX, CYLINDER, ELLIPSOID])
def test_ray_hit_lies_on_surface(kind):
    parts = Parts(
        kind=np.array([kind], np.int8),
        center=np.array([[5.0, 1.0, 1.0]]),
        half=np.array([[1.0, 0.7, 0.9]]),
        yaw=np.array([0.6]),
        label=np.array([4], np.uint8),
        instance=np.array([0]),
    )
    rng = np.random.default_rng(0)
    dirs = parts.center[0] + rng.uniform(-0.6, 0.6, (500, 3)) * [0.5, 0.5, 0.8]
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    t = intersect_part(0, parts, np.zeros((500, 3)), dirs)
    assert np.isfinite(t).mean() > 0.9
    hit = dirs[np.isfinite(t)] * t[np.isfinite(t), None]
    assert inside_part(0, parts, hit * 1.0005 + 1e-4 * (hit - parts.center[0])).mean() > 0.95  # just inside
    assert not inside_part(0, parts, hit * 0.995).any()  # just before the hit: outside
