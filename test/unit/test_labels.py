import numpy as np
import pytest

from tacocc_core.labels import (
    CLASS_IDS,
    CLASS_NAMES,
    IGNORE,
    NUM_CLASSES,
    OCC3D_GRID,
    PALETTE,
    SURROUNDOCC_GRID,
    LabelFileError,
    colorize,
    dense_to_surroundocc,
    load_occ3d,
    load_surroundocc,
    occ3d_to_dense,
    surroundocc_to_dense,
)


def test_class_table():
    assert NUM_CLASSES == 17 == len(CLASS_NAMES) == len(PALETTE)
    assert CLASS_NAMES[0] == "empty" and CLASS_NAMES[16] == "vegetation"
    assert CLASS_IDS["car"] == 4 and CLASS_IDS["driveable_surface"] == 11
    assert PALETTE.dtype == np.uint8 and PALETTE.shape == (17, 3)
    assert len({tuple(c) for c in PALETTE.tolist()}) == 17  # every class has its own colour


def test_colorize():
    rgb = colorize(np.array([[0, 4, IGNORE]], np.uint8))
    assert rgb.shape == (1, 3, 3)
    assert rgb[0, 1].tolist() == PALETTE[4].tolist()
    assert rgb[0, 2].tolist() == [40, 40, 40]


def test_surroundocc_to_dense_by_hand():
    rows = np.array([[0, 0, 0, 4], [199, 199, 15, 16], [10, 20, 3, 0]])
    dense = surroundocc_to_dense(rows, SURROUNDOCC_GRID.shape)
    assert dense.shape == (200, 200, 16) and dense.dtype == np.uint8
    assert dense[0, 0, 0] == 4 and dense[199, 199, 15] == 16
    assert dense[10, 20, 3] == IGNORE  # label 0 (noise) -> ignore
    assert (dense != 0).sum() == 3
    np.testing.assert_array_equal(surroundocc_to_dense(dense_to_surroundocc(dense), dense.shape), dense)


def test_surroundocc_file_round_trip(tmp_path):
    path = tmp_path / "n008__LIDAR_TOP__1.pcd.bin.npy"
    np.save(path, np.array([[5, 6, 7, 11], [5, 6, 8, 15]], dtype=np.int64))
    dense = load_surroundocc(path)
    assert dense[5, 6, 7] == 11 and dense[5, 6, 8] == 15


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.array([[0, 0, 200, 4]]), r"1 voxel indices outside the grid \(200, 200, 16\), first at row 0"),
        (np.array([[0, 0, -1, 4]]), "outside the grid"),
        (np.array([[0, 0, 0, 17], [1, 1, 1, 99]]), r"unknown labels \[17, 99\]; allowed 0..16"),
        (np.zeros((3, 3)), r"expected \(N, 4\)"),
        (np.array([[0.5, 0, 0, 4]]), "must be whole numbers"),
    ],
)
def test_bad_surroundocc_files_name_the_file(tmp_path, rows, message):
    path = tmp_path / "bad.npy"
    np.save(path, rows)
    with pytest.raises(LabelFileError, match=message) as err:
        load_surroundocc(path)
    assert str(path) in str(err.value)


def test_missing_and_corrupt_label_files(tmp_path):
    with pytest.raises(LabelFileError, match="absent.npy: label file not found"):
        load_surroundocc(tmp_path / "absent.npy")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    with pytest.raises(LabelFileError, match="junk.npy: not a readable .npy array"):
        load_surroundocc(junk)
    junk_npz = tmp_path / "labels.npz"
    junk_npz.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(LabelFileError, match="labels.npz: not a readable .npz archive"):
        load_occ3d(junk_npz)


def test_occ3d_mapping_by_hand():
    semantics = np.array([[[17, 0, 4, 11]]], np.uint8)
    mask = np.array([[[1, 1, 1, 0]]], np.uint8)
    assert occ3d_to_dense(semantics, None).tolist() == [[[0, IGNORE, 4, 11]]]
    assert occ3d_to_dense(semantics, mask).tolist() == [[[0, IGNORE, 4, IGNORE]]]


def test_occ3d_rejects_unknown_values_and_missing_arrays(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, semantics=np.full((2, 2, 2), 18, np.uint8), mask_camera=np.ones((2, 2, 2), np.uint8))
    with pytest.raises(LabelFileError, match=r"unknown Occ3D labels \[18\]; allowed 0..17"):
        load_occ3d(path)
    np.savez(path, semantics=np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(LabelFileError, match=r"labels.npz: no 'mask_camera' array \(found \['semantics'\]\)"):
        load_occ3d(path)
    assert load_occ3d(path, use_camera_mask=False).shape == (2, 2, 2)


def test_real_occ3d_grid(occ3d_labels_path):
    raw = np.load(occ3d_labels_path)
    semantics, mask_camera = raw["semantics"], raw["mask_camera"]
    dense = load_occ3d(occ3d_labels_path)
    assert dense.shape == OCC3D_GRID.shape == (200, 200, 16) and dense.dtype == np.uint8
    # Exactly the documented mapping, voxel for voxel.
    seen = mask_camera == 1
    assert (dense[~seen] == IGNORE).all()
    assert (dense[seen & (semantics == 17)] == 0).all()
    assert (dense[seen & (semantics == 0)] == IGNORE).all()
    classes = seen & (semantics >= 1) & (semantics <= 16)
    np.testing.assert_array_equal(dense[classes], semantics[classes])
    # The classes present in the fixture survive (README: 1,3,4,6,11,13,14,15,16 besides 0 and 17).
    assert set(np.unique(dense).tolist()) == {0, 1, 3, 4, 6, 11, 13, 14, 15, 16, IGNORE}
    # A driving scene: the road lies low, below the vehicles.
    road_z = np.argwhere(dense == 11)[:, 2].mean()
    car_z = np.argwhere(dense == 4)[:, 2].mean()
    assert road_z < car_z
    unmasked = load_occ3d(occ3d_labels_path, use_camera_mask=False)
    assert (unmasked == 0).sum() == (semantics == 17).sum()
