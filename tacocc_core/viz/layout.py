"""Putting pictures together: titles, side-by-side and stacked panels, and the class legend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tacocc_core.labels import CLASS_NAMES, EMPTY, IGNORE, NUM_CLASSES, colorize

BACKGROUND = (255, 255, 255)  # page colour around the panels
TEXT = (20, 20, 20)


@lru_cache(maxsize=8)
def font(size: int = 16) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled FreeType font at `size` pixels (a bitmap font where FreeType is missing)."""
    return ImageFont.load_default(size=size)


def text_size(text: str, size: int) -> tuple[int, int]:
    """(width, height) in pixels of `text` at font `size`."""
    left, top, right, bottom = font(size).getbbox(text)
    return int(right - min(left, 0)), int(bottom)


def fit_text(text: str, width: int, size: int) -> str:
    """`text`, shortened in the middle with an ellipsis until it fits in `width` pixels."""
    if text_size(text, size)[0] <= width:
        return text
    keep = len(text)
    while keep > 2:
        keep -= 1
        short = text[: (keep + 1) // 2] + "\u2026" + text[len(text) - keep // 2 :]
        if text_size(short, size)[0] <= width:
            return short
    return text[:1] + "\u2026"


def titled(image: np.ndarray, title: str, size: int = 18, pad: int = 6) -> np.ndarray:
    """Add a band with `title` centred above an (H, W, 3) uint8 image (shortened to the image's width)."""
    title = fit_text(title, max(image.shape[1] - 2 * pad, 1), size)
    tw, th = text_size(title, size)
    band_h = th + 2 * pad
    width = max(image.shape[1], tw + 2 * pad)
    canvas = Image.new("RGB", (width, band_h + image.shape[0]), BACKGROUND)
    canvas.paste(Image.fromarray(image), ((width - image.shape[1]) // 2, band_h))
    ImageDraw.Draw(canvas).text(((width - tw) // 2, pad), title, fill=TEXT, font=font(size))
    return np.asarray(canvas)


def hstack(images: Sequence[np.ndarray], gap: int = 12) -> np.ndarray:
    """Images side by side, tops aligned, on the page colour."""
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    x = 0
    for im in images:
        out[: im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + gap
    return out


def vstack(images: Sequence[np.ndarray], gap: int = 12) -> np.ndarray:
    """Images one below the other, centred horizontally, on the page colour."""
    width = max(im.shape[1] for im in images)
    height = sum(im.shape[0] for im in images) + gap * (len(images) - 1)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    y = 0
    for im in images:
        x = (width - im.shape[1]) // 2
        out[y : y + im.shape[0], x : x + im.shape[1]] = im
        y += im.shape[0] + gap
    return out


def pad(image: np.ndarray, margin: int) -> np.ndarray:
    """A margin of page colour around an image."""
    out = np.empty((image.shape[0] + 2 * margin, image.shape[1] + 2 * margin, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    out[margin : margin + image.shape[0], margin : margin + image.shape[1]] = image
    return out


def classes_present(grids: Iterable[np.ndarray]) -> list[int]:
    """Sorted label values present in any of the grids, empty (0) left out; 255 (ignore) last if present."""
    present: set[int] = set()
    for grid in grids:
        present.update(np.unique(np.asarray(grid)).tolist())
    present.discard(EMPTY)
    return sorted(present - {IGNORE}) + ([IGNORE] if IGNORE in present else [])


def legend(class_ids: Sequence[int], width: int, size: int = 15, swatch: int = 14) -> np.ndarray:
    """Rows of colour swatches with class names, wrapped to `width` pixels; an empty band if no classes."""
    entries = []
    for cid in class_ids:
        name = "ignore" if cid == IGNORE else CLASS_NAMES[cid] if 0 <= cid < NUM_CLASSES else f"label {cid}"
        entries.append((cid, name.replace("_", " ")))
    cell_w = max([text_size(name, size)[0] for _, name in entries] or [0]) + swatch + 22
    per_row = max(1, width // cell_w) if entries else 1
    rows = max(1, -(-len(entries) // per_row))
    row_h = max(swatch, text_size("Ag", size)[1]) + 8
    canvas = Image.new("RGB", (width, rows * row_h + 8), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    used = min(len(entries), per_row) * cell_w
    x0 = max(0, (width - used) // 2)
    for n, (cid, name) in enumerate(entries):
        x, y = x0 + (n % per_row) * cell_w, 4 + (n // per_row) * row_h
        colour = tuple(int(c) for c in colorize(np.array([cid], dtype=np.uint8))[0])
        draw.rectangle([x, y + 2, x + swatch, y + 2 + swatch], fill=colour, outline=(90, 90, 90))
        draw.text((x + swatch + 6, y + 1), name, fill=TEXT, font=font(size))
    return np.asarray(canvas)
