"""tacocc_core.viz.raster: the nearest candidate wins each pixel, as a plain loop would decide."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.reference.raster import nearest_per_pixel_reference
from tacocc_core.viz.raster import disc_offsets, nearest_per_pixel


@pytest.mark.parametrize("seed,count,pixels,ties", [(0, 1, 1, False), (1, 50, 10, False), (2, 2000, 300, True)])
def test_matches_the_loop_reference(seed, count, pixels, ties):
    rng = np.random.default_rng(seed)
    pixel = rng.integers(0, pixels, count)
    depth = rng.integers(0, 5, count).astype(float) if ties else rng.random(count)
    got_w, got_p = nearest_per_pixel(pixel, depth)
    ref_w, ref_p = nearest_per_pixel_reference(pixel, depth)
    np.testing.assert_array_equal(got_p, ref_p)
    np.testing.assert_array_equal(got_w, ref_w)


def test_empty_input_gives_no_pixels():
    w, p = nearest_per_pixel(np.zeros(0, dtype=np.int64), np.zeros(0))
    assert w.size == 0 and p.size == 0


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="one length"):
        nearest_per_pixel(np.zeros(3, dtype=np.int64), np.zeros(2))


def test_disc_offsets_are_symmetric_and_include_the_centre():
    off = disc_offsets(2)
    assert [0, 0] in off.tolist()
    assert sorted(map(tuple, off.tolist())) == sorted(map(tuple, (-off).tolist()))
    assert np.all(np.abs(off) <= 2)
    assert len(disc_offsets(0)) == 1
