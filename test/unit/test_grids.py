import pytest

from tacocc_core.config import load_preset
from tacocc_core.model.grids import coarse_grid


@pytest.mark.parametrize(
    ("preset", "shape", "size"), [("nuscenes_r50_256x704", (100, 100, 8), 1.0), ("tiny", (24, 24, 4), 2.0)]
)
def test_coarse_grid(preset, shape, size):
    config = load_preset(preset)
    grid = coarse_grid(config)
    assert grid.shape == shape and grid.voxel_size == (size,) * 3
    assert grid.lower == config.grid.spec().lower
    assert list(grid.upper) == list(config.grid.spec().upper)
