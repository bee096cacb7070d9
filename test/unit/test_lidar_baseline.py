import numpy as np

from tacocc_core.config import load_preset
from tacocc_core.lidar_baseline import OCCUPIED, lidar_accumulation
from tacocc_core.metrics import OccupancyEvaluator

DEMO = load_preset("demo")  # 48 x 48 x 8 voxels of 1 m, x, y in [-24, 24), z in [-5, 3)


def test_points_mark_their_voxels_and_filtered_points_do_not():
    points = np.array(
        [
            [10.2, 5.5, 0.5, 1.0, 0.0],  # voxel (34, 29, 5)
            [10.7, 5.1, 0.9, 1.0, 0.05],  # the same voxel, the previous sweep
            [-20.5, -3.5, -4.5, 1.0, 0.0],  # voxel (3, 20, 0)
            [0.3, 0.4, 0.0, 1.0, 0.0],  # within min_range of the sensor: dropped, as the network drops it
            [30.0, 0.0, 0.0, 1.0, 0.0],  # outside the grid
        ],
        np.float32,
    )
    grid = lidar_accumulation(points, DEMO)
    assert grid.shape == (48, 48, 8) and grid.dtype == np.uint8
    assert grid[34, 29, 5] == OCCUPIED and grid[3, 20, 0] == OCCUPIED
    assert int((grid > 0).sum()) == 2


def test_scored_for_geometry_against_the_truth():
    points = np.array([[10.2, 5.5, 0.5, 1.0, 0.0], [-20.5, -3.5, -4.5, 1.0, 0.0]], np.float32)
    truth = np.zeros((48, 48, 8), np.uint8)
    truth[34, 29, 5] = 4  # car: found
    truth[10, 10, 2] = 15  # manmade: missed
    evaluator = OccupancyEvaluator(DEMO.grid.spec(), bands_m=())
    evaluator.update(lidar_accumulation(points, DEMO), truth)
    assert evaluator.results()["all"].geometry_iou == 1 / 3  # TP 1, FP 1, FN 1
