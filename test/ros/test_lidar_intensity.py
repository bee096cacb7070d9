"""tacocc_ros.node.lidar_intensity: intensities into the 0-255 training scale, and the check that they land there."""

import numpy as np
import pytest

from tacocc_ros.node.lidar_intensity import TRAINED_MAX, intensity_problem, scale_intensity

RNG = np.random.default_rng(0)


def sweep(top: float, n: int = 20000) -> np.ndarray:
    points = RNG.uniform(-50, 50, (n, 4)).astype(np.float32)
    points[:, 3] = RNG.uniform(0, top, n)
    return points


def test_the_scale_multiplies_the_intensity_column_only():
    points = sweep(1.0)
    before = points.copy()
    scale_intensity(points, 255.0)
    np.testing.assert_array_equal(points[:, :3], before[:, :3])
    np.testing.assert_allclose(points[:, 3], before[:, 3] * 255.0, rtol=1e-6)


@pytest.mark.parametrize("top", [255.0, 100.0, 30.0])
def test_intensities_on_the_training_scale_pass(top):
    assert intensity_problem(sweep(top)[:, 3], 1.0) is None


def test_a_driver_on_a_larger_scale_is_reported_with_the_scale_that_fits():
    problem = intensity_problem(sweep(4096.0)[:, 3], 1.0)
    assert problem is not None and "far above the training scale" in problem and f"0-{TRAINED_MAX:g}" in problem
    suggested = float(problem.split("(e.g. ")[1].split()[0])
    assert suggested == pytest.approx(TRAINED_MAX / 4096.0, rel=0.02)


def test_a_zero_to_one_driver_is_reported_and_the_right_scale_silences_it():
    points = sweep(1.0)
    problem = intensity_problem(points[:, 3], 1.0)
    assert problem is not None and "far below the training scale" in problem
    suggested = float(problem.split("(e.g. ")[1].split()[0])
    assert suggested == pytest.approx(255.0, rel=0.02)
    scale_intensity(points, suggested)
    assert intensity_problem(points[:, 3], suggested) is None


def test_a_cloud_without_intensity_is_reported_and_an_empty_one_is_not():
    assert "all 0" in intensity_problem(np.zeros(1000, np.float32), 1.0)
    assert intensity_problem(np.zeros(0, np.float32), 1.0) is None
    assert intensity_problem(np.full(10, np.nan, np.float32), 1.0) is None
