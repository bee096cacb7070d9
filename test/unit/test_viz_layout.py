"""tacocc_core.viz.layout: titles, stacking and the legend of the classes present."""

from __future__ import annotations

import numpy as np

from tacocc_core.labels import IGNORE, IGNORE_COLOUR, PALETTE
from tacocc_core.viz.layout import BACKGROUND, classes_present, fit_text, hstack, legend, text_size, titled, vstack


def test_classes_present_leaves_out_empty_and_puts_ignore_last():
    a = np.array([0, 4, IGNORE, 11], dtype=np.uint8)
    b = np.array([16, 4], dtype=np.uint8)
    assert classes_present([a, b]) == [4, 11, 16, IGNORE]
    assert classes_present([np.zeros(3, dtype=np.uint8)]) == []


def test_legend_draws_a_swatch_per_class_and_wraps_to_the_width():
    wide = legend([4, 11, IGNORE], 900)
    for colour in (PALETTE[4], PALETTE[11], IGNORE_COLOUR):
        assert np.all(wide == colour, axis=2).sum() >= 100
    narrow = legend(list(range(1, 17)), 300)
    assert narrow.shape[1] == 300 and narrow.shape[0] > wide.shape[0]
    assert legend([], 200).shape[1] == 200


def test_titled_and_stacks_keep_every_pixel_of_the_panels():
    red = np.zeros((20, 30, 3), dtype=np.uint8)
    red[:] = (255, 0, 0)
    blue = np.zeros((10, 50, 3), dtype=np.uint8)
    blue[:] = (0, 0, 255)
    t = titled(red, "title")
    assert t.shape[0] > 20 and np.all(t[-20:, (t.shape[1] - 30) // 2 :][:, :30] == (255, 0, 0))
    h = hstack([red, blue], gap=5)
    assert h.shape == (20, 85, 3)
    assert np.all(h[:20, :30] == (255, 0, 0)) and np.all(h[:10, 35:] == (0, 0, 255))
    assert np.all(h[10:, 35:] == BACKGROUND)
    v = vstack([red, blue], gap=5)
    assert v.shape == (35, 50, 3)
    assert np.all(v[25:, :] == (0, 0, 255)) and np.all(v[:20, 10:40] == (255, 0, 0))


def test_long_titles_are_shortened_in_the_middle_to_the_panel_width():
    name = "synth3-0000__LIDAR_TOP__1700003000000000.pcd.bin.npy"
    short = fit_text(name, 200, 18)
    assert short != name and "\u2026" in short and short.startswith("synth3") and short.endswith(".npy")
    assert text_size(short, 18)[0] <= 200
    assert fit_text("car", 200, 18) == "car"
    assert titled(np.zeros((10, 200, 3), dtype=np.uint8), name).shape[1] == 200
