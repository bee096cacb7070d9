"""tacocc_core.viz.animation: a GIF with every frame, readable back, never half-written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

from tacocc_core.labels import PALETTE
from tacocc_core.viz.animation import write_gif


def _frames(n=3, h=40, w=60):
    return [np.broadcast_to(PALETTE[4 + i], (h, w, 3)).copy() for i in range(n)]


def test_gif_holds_every_frame_at_the_given_rate(tmp_path):
    path = write_gif(tmp_path / "seq.gif", _frames(3), fps=4.0)
    with Image.open(path) as gif:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
        assert gif.info["duration"] == 250
        assert gif.info.get("loop") == 0
    assert len(frames) == 3
    for i, frame in enumerate(frames):
        assert frame.shape == (40, 60, 3)
        np.testing.assert_array_equal(frame[20, 30], PALETTE[4 + i])
    assert [p.name for p in tmp_path.iterdir()] == ["seq.gif"]


def test_frames_of_different_sizes_are_padded_to_the_largest(tmp_path):
    frames = [_frames(1, 40, 60)[0], _frames(1, 30, 80)[0]]
    with Image.open(write_gif(tmp_path / "pad.gif", frames)) as gif:
        assert gif.size == (80, 40)
        assert gif.n_frames == 2


def test_bad_input_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_gif(tmp_path / "none.gif", [])
    with pytest.raises(ValueError, match="frame 1"):
        write_gif(tmp_path / "bad.gif", [_frames(1)[0], np.zeros((4, 4), dtype=np.uint8)])
    with pytest.raises(ValueError, match="fps"):
        write_gif(tmp_path / "slow.gif", _frames(1), fps=0)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_gif_is_replaced_whole(tmp_path):
    path = tmp_path / "seq.gif"
    write_gif(path, _frames(3))
    write_gif(path, _frames(2))
    with Image.open(path) as gif:
        assert gif.n_frames == 2
