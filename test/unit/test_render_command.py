"""`tacocc render` end to end: files in, a PNG out; bad files and mismatched grids named on stderr."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tacocc_core.cli import main
from tacocc_core.config import load_preset
from tacocc_core.labels import PALETTE, SURROUNDOCC_GRID, load_surroundocc
from tacocc_core.viz.grid_io import save_prediction


@pytest.fixture(scope="module")
def surroundocc_file(synthetic_dataset):
    return sorted((synthetic_dataset / "surroundocc" / "samples").glob("*.npy"))[0]


def _read_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def test_prediction_beside_ground_truth(tmp_path, surroundocc_file, capsys):
    gt = load_surroundocc(surroundocc_file)
    pred = gt.copy()
    pred[pred == 4] = 10  # the "model" calls every car a truck
    pred_path = save_prediction(tmp_path / "pred.npy", pred)
    out = tmp_path / "pics" / "compare.png"
    rc = main(["render", str(pred_path), "--gt", str(surroundocc_file), "--out", str(out), "--view", "bev", "--flat"])
    assert rc == 0
    assert "compare.png" in capsys.readouterr().out
    image = _read_png(out)
    half = image.shape[1] // 2
    body = image[: 8 + 600]  # margin + title band + 600-pixel view, above the legend
    assert np.all(body[:, :half] == PALETTE[10], axis=2).any()  # trucks in the prediction
    assert np.all(body[:, half:] == PALETTE[4], axis=2).any()  # cars in the ground truth
    assert not np.all(body[:, :half] == PALETTE[4], axis=2).any()
    assert sorted(p.name for p in out.parent.iterdir()) == ["compare.png"]


def test_occ3d_both_views(tmp_path, occ3d_labels_path):
    out = tmp_path / "occ3d.png"
    assert main(["render", str(occ3d_labels_path), "--out", str(out)]) == 0
    image = _read_png(out)
    assert image.shape[0] > image.shape[1]  # bird's-eye view above the 3D view
    assert np.all(image == PALETTE[11], axis=2).sum() > 1000


def test_grid_preset_for_a_tiny_prediction(tmp_path):
    tiny = load_preset("tiny").grid.spec()
    labels = np.zeros(tiny.shape, dtype=np.uint8)
    labels[:, :, 3] = 11
    path = save_prediction(tmp_path / "p.npy", labels)
    out = tmp_path / "tiny.png"
    assert main(["render", str(path), "--out", str(out), "--grid", "tiny", "--view", "3d"]) == 0
    assert np.all(_read_png(out) == PALETTE[11], axis=2).any()


@pytest.mark.parametrize(
    "make_args,message",
    [
        (lambda d, s: [str(d / "missing.npy"), "--out", str(d / "o.png")], "missing.npy: grid file not found"),
        (lambda d, s: [str(s), "--out", str(d / "o.jpg")], "name it *.png"),
        (lambda d, s: [str(s), "--gt", str(d / "small.npy"), "--out", str(d / "o.png")], "has shape"),
        (lambda d, s: [str(s), "--gt", str(d / "occ3d.npz"), "--out", str(d / "o.png")], "cannot be compared"),
        (lambda d, s: [str(s), "--grid", "huge", "--out", str(d / "o.png")], "unknown preset 'huge'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path, surroundocc_file, occ3d_labels_path, capsys, make_args, message
):
    save_prediction(tmp_path / "small.npy", np.zeros(load_preset("tiny").grid.spec().shape, dtype=np.uint8))
    (tmp_path / "occ3d.npz").write_bytes(occ3d_labels_path.read_bytes())
    rc = main(["render", *make_args(tmp_path, surroundocc_file)])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_console_entry_point_runs(tmp_path):
    path = save_prediction(tmp_path / "p.npy", np.zeros(SURROUNDOCC_GRID.shape, dtype=np.uint8))
    out = tmp_path / "empty.png"
    proc = subprocess.run(
        [sys.executable, "-m", "tacocc_core.cli", "render", str(path), "--out", str(out), "--view", "bev"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert _read_png(out).shape[1] >= 600
