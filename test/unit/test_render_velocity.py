import numpy as np
import pytest
import torch

from tacocc_core.geometry import GridSpec, make_transform
from tacocc_core.render.velocity import sample_displacement, voxel_displacement

GRID = GridSpec.from_ranges((-10.0, 10.0), (-10.0, 10.0), (-2.0, 2.0), 2.0)


def cluster(centre, n=40, spread=0.3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(centre) + rng.uniform(-spread, spread, (n, 3))


def test_static_world_seen_from_a_moving_ego_has_zero_displacement():
    # A pole at (5, 1, 0) in the world. The ego drives 0.4 m forward (+x) between frames, turning 5 deg.
    pole_world = cluster([5.0, 1.0, 0.0])
    ego_prev = np.eye(4)
    ego_curr = make_transform(
        np.array([[np.cos(0.087), -np.sin(0.087), 0], [np.sin(0.087), np.cos(0.087), 0], [0, 0, 1]]), [0.4, 0.0, 0.0]
    )
    prev = (np.linalg.inv(ego_prev) @ np.c_[pole_world, np.ones(40)].T).T[:, :3]
    curr = (np.linalg.inv(ego_curr) @ np.c_[pole_world, np.ones(40)].T).T[:, :3]
    prev2curr = np.linalg.inv(ego_curr) @ ego_prev
    index, disp = voxel_displacement(torch.from_numpy(prev), torch.from_numpy(curr), torch.from_numpy(prev2curr), GRID)
    assert index.shape[0] >= 1
    assert disp.norm(dim=1).max() < 1e-9


def test_moving_object_displacement_and_lookup():
    # Static wall (same points in both sweeps, identity ego motion) and a car moving +0.5 m in x.
    wall = cluster([-6.5, 5.0, 0.0], seed=1)
    car_prev = cluster([3.0, -3.0, 0.0], spread=0.2, seed=2)
    car_curr = car_prev + np.array([0.5, 0.0, 0.0])
    prev = torch.from_numpy(np.vstack([wall, car_prev]))
    curr = torch.from_numpy(np.vstack([wall, car_curr]))
    index, disp = voxel_displacement(prev, curr, torch.eye(4, dtype=torch.float64), GRID)
    car_voxel = torch.tensor([6, 3, 1])  # floor(([3.5, -3, 0] - lower) / 2)
    row = (index == car_voxel).all(dim=1).nonzero()[0, 0]
    # Points that stayed in the car's voxel moved by 0.5 m; the centroid shift is 0.5 m along x.
    assert disp[row].tolist() == pytest.approx([0.5, 0.0, 0.0], abs=0.15)
    wall_row = (index == torch.tensor([1, 7, 1])).all(dim=1).nonzero()[0, 0]
    assert disp[wall_row].norm() < 1e-12
    means = torch.tensor([[3.4, -3.2, 0.1], [-6.0, 5.2, 0.0], [9.0, 9.0, 1.0], [50.0, 0.0, 0.0]])
    speed = sample_displacement(means, index, disp, GRID)
    assert speed[0] == pytest.approx(disp[row].norm().item(), rel=1e-5)
    assert speed[1:].tolist() == [0.0, 0.0, 0.0]  # wall, an empty voxel, outside the grid


def test_no_points_gives_no_voxels_and_bad_shapes_are_named():
    index, disp = voxel_displacement(torch.zeros(0, 4), torch.zeros(0, 4), torch.eye(4), GRID)
    assert index.shape == (0, 3) and disp.shape == (0, 3)
    assert sample_displacement(torch.zeros(2, 3), index, disp, GRID).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"curr_points must be \(N, 3\+\)"):
        voxel_displacement(torch.zeros(3, 3), torch.zeros(3, 2), torch.eye(4), GRID)
    with pytest.raises(ValueError, match=r"prev2curr must be \(4, 4\)"):
        voxel_displacement(torch.zeros(3, 3), torch.zeros(3, 3), torch.eye(3), GRID)
