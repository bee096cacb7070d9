import numpy as np

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import OCC3D_GRID
from tacocc_core.train.evaluation import occ3d_prediction


def test_a_prediction_reaches_the_occ3d_grid_in_the_ego_frame():
    """LiDAR 1.8 m above the ego origin: a car voxel at LiDAR z in [-2, -1) lies at ego z in [-0.2, 0.8)."""
    grid = GridSpec((-4.0, -4.0, -3.0), (1.0, 1.0, 1.0), (8, 8, 6))
    labels = np.zeros(grid.shape, np.uint8)
    labels[4, 4, 1] = 4  # LiDAR frame x in [0, 1), y in [0, 1), z in [-2, -1)
    lidar2ego = np.eye(4)
    lidar2ego[2, 3] = 1.8
    out = occ3d_prediction(labels, grid, lidar2ego)
    assert out.shape == OCC3D_GRID.shape and out.dtype == np.uint8
    car = np.argwhere(out == 4)
    centres = OCC3D_GRID.centers()[tuple(car.T)]
    assert len(car) > 0
    assert np.all((centres[:, 0] >= 0) & (centres[:, 0] < 1) & (centres[:, 1] >= 0) & (centres[:, 1] < 1))
    assert np.all((centres[:, 2] >= -0.2) & (centres[:, 2] < 0.8))
    # Empty inside the network's grid and everything outside it read as free (17); no 'others' (0).
    assert set(np.unique(out).tolist()) == {4, 17}
