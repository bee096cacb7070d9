"""tacocc_core.viz.grid_io: every grid format found from its content, its grid and frame, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from tacocc_core.config import load_preset
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import OCC3D_GRID, SURROUNDOCC_GRID, LabelFileError, load_occ3d, load_surroundocc
from tacocc_core.viz.grid_io import read_grid, save_prediction


def test_surroundocc_file_from_the_synthetic_dataset(synthetic_dataset):
    path = sorted((synthetic_dataset / "surroundocc" / "samples").glob("*.npy"))[0]
    loaded = read_grid(path)
    assert loaded.kind == "surroundocc" and loaded.forward == "+y" and loaded.grid == SURROUNDOCC_GRID
    np.testing.assert_array_equal(loaded.labels, load_surroundocc(path))
    assert (loaded.labels == 11).any()  # the generated street has a road


def test_surroundocc_rows_on_another_grid_are_sized_by_it(tmp_path):
    rows = np.array([[1, 2, 3, 4], [0, 0, 0, 0]], dtype=np.int64)
    np.save(tmp_path / "s.npy", rows)
    grid = GridSpec.from_ranges((-2.0, 2.0), (-2.0, 2.0), (-2.0, 2.0), 1.0)
    loaded = read_grid(tmp_path / "s.npy", grid)
    assert loaded.labels.shape == (4, 4, 4)
    assert loaded.labels[1, 2, 3] == 4 and loaded.labels[0, 0, 0] == 255


def test_occ3d_archive_is_read_in_the_ego_frame(occ3d_labels_path):
    loaded = read_grid(occ3d_labels_path)
    assert loaded.kind == "occ3d" and loaded.forward == "+x" and loaded.grid == OCC3D_GRID
    np.testing.assert_array_equal(loaded.labels, load_occ3d(occ3d_labels_path))
    unmasked = read_grid(occ3d_labels_path, use_camera_mask=False)
    assert (unmasked.labels == 255).sum() < (loaded.labels == 255).sum()


def test_prediction_round_trip_finds_the_preset_grid_by_shape(tmp_path):
    tiny = load_preset("tiny").grid.spec()
    labels = np.zeros(tiny.shape, dtype=np.uint8)
    labels[3, 4, 5] = 7
    path = save_prediction(tmp_path / "pred.npy", labels)
    assert [p.name for p in tmp_path.iterdir()] == ["pred.npy"]
    loaded = read_grid(path)
    assert loaded.kind == "prediction" and loaded.grid == tiny and loaded.forward == "+y"
    np.testing.assert_array_equal(loaded.labels, labels)
    big = np.zeros(SURROUNDOCC_GRID.shape, dtype=np.uint8)
    assert read_grid(save_prediction(tmp_path / "big.npy", big)).grid == SURROUNDOCC_GRID


def test_dense_grid_of_an_unknown_shape_needs_a_grid(tmp_path):
    np.save(tmp_path / "odd.npy", np.zeros((10, 12, 3), dtype=np.uint8))
    with pytest.raises(LabelFileError, match=r"odd\.npy.*\(10, 12, 3\).*no model preset"):
        read_grid(tmp_path / "odd.npy")
    grid = GridSpec.from_ranges((-5.0, 5.0), (-6.0, 6.0), (0.0, 3.0), 1.0)
    assert read_grid(tmp_path / "odd.npy", grid).grid == grid
    other = GridSpec.from_ranges((-5.0, 5.0), (-5.0, 5.0), (0.0, 3.0), 1.0)
    with pytest.raises(LabelFileError, match="grid given has shape"):
        read_grid(tmp_path / "odd.npy", other)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"hello, not an array", "neither a .npy"),
        (b"\x93NUMPY\x01\x00garbage", "not a readable .npy"),
        (b"PK\x03\x04broken zip", "not a readable .npz"),
    ],
)
def test_unreadable_files_are_named(tmp_path, content, match):
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(LabelFileError, match=match) as info:
        read_grid(path)
    assert "bad.npy" in str(info.value)


@pytest.mark.parametrize(
    "array,match",
    [
        (np.full((4, 4, 4), 40, dtype=np.uint8), r"labels \[40\]"),
        (np.zeros((4, 4, 4), dtype=np.float32), "integer labels"),
        (np.zeros((4, 3), dtype=np.uint8), r"shape \(4, 3\)"),
    ],
)
def test_bad_arrays_are_rejected_with_the_values(tmp_path, array, match):
    np.save(tmp_path / "g.npy", array)
    with pytest.raises(LabelFileError, match=match):
        read_grid(tmp_path / "g.npy", GridSpec.from_ranges((0.0, 4.0), (0.0, 4.0), (0.0, 4.0), 1.0))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(LabelFileError, match="nowhere.npy: grid file not found"):
        read_grid(tmp_path / "nowhere.npy")


def test_save_prediction_rejects_non_grids(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_prediction(tmp_path / "p.npy", np.zeros((2, 2, 2), dtype=np.int64))
    assert list(tmp_path.iterdir()) == []
