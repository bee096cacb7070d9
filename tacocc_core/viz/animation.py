"""Pictures of a sequence -> one animated GIF, written atomically.

Pillow writes the GIF (one adaptive 256-colour palette per frame, which suits the flat palette colours
of the occupancy pictures); frames of different sizes are padded to the largest on the page colour.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tacocc_core.viz.image_io import atomic_path, check_image
from tacocc_core.viz.layout import BACKGROUND


def write_gif(path: str | os.PathLike[str], frames: Sequence[np.ndarray], fps: float = 2.0, loop: int = 0) -> Path:
    """Write (H, W, 3) uint8 RGB `frames` as an animated GIF at `path`, atomically. Returns the path.

    Args:
        fps: frames per second (GIF stores the delay in 10 ms steps).
        loop: times to repeat; 0 = forever.
    """
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to animate")
    if not 0 < fps <= 100:
        raise ValueError(f"{path}: fps must be in (0, 100], got {fps}")
    frames = [check_image(f, f"frame {n}") for n, f in enumerate(frames)]
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    pictures = []
    for f in frames:
        page = Image.new("RGB", (width, height), BACKGROUND)
        page.paste(Image.fromarray(f), (0, 0))
        pictures.append(page)
    with atomic_path(path) as tmp:
        pictures[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=round(1000 / fps),
            loop=loop,
            disposal=1,
        )
    return Path(path)
