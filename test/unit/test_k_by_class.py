import numpy as np
import pytest

from tacocc_core.labels import CLASS_IDS, IGNORE
from tacocc_core.train.k_by_class import KByClass, block_classes, k_cell, k_tables_markdown

CAR, PED, ROAD = CLASS_IDS["car"], CLASS_IDS["pedestrian"], CLASS_IDS["driveable_surface"]


def test_block_class_is_the_most_frequent_semantic_class():
    labels = np.zeros((4, 2, 2), np.uint8)
    labels[0:2, 0:2, 0:2] = ROAD
    labels[0, 0, 0] = CAR
    labels[2, 0, 0] = PED  # one pedestrian voxel among empty ones: the block is pedestrian
    labels[2:4, 0:2, 0:2][labels[2:4, 0:2, 0:2] == 0] = 0
    out = block_classes(labels, (2, 1, 1))
    assert out.tolist() == [[[ROAD]], [[PED]]]
    labels[2:4] = IGNORE
    assert block_classes(labels, (2, 1, 1)).tolist() == [[[ROAD]], [[-1]]]
    labels[2:4] = 0
    assert block_classes(labels, (2, 1, 1)).tolist() == [[[ROAD]], [[0]]]
    with pytest.raises(ValueError, match="not a multiple"):
        block_classes(labels, (3, 1, 1))


def test_counts_by_class_and_size_group():
    labels = np.zeros((4, 4, 2), np.uint8)
    labels[0:2, 0:2] = CAR
    labels[2:4, 0:2] = PED
    labels[0:2, 2:4] = ROAD
    labels[2:4, 2:4] = IGNORE
    s0 = np.array([[3, 3], [1, 2]], np.int8)[..., None]  # (2, 2, 1): car k=3, road k=3, ped k=1, ignored k=2
    s1 = np.zeros((1, 1, 1), np.int8)  # no query
    lidar = np.array([[0, 2], [1, 0]], np.int8)[..., None]
    k = KByClass((1, 2, 3))
    k.update([s0, lidar, s1, s1], labels)
    k.update([s0, lidar, s1, s1], labels)
    by_class = k.by_class()
    assert by_class["image s0"] == {"car": [0, 0, 2], "pedestrian": [2, 0, 0], "driveable_surface": [0, 0, 2]}
    assert by_class["lidar s0"] == {"pedestrian": [2, 0, 0], "driveable_surface": [0, 2, 0]}
    assert by_class["image s1"] == {}
    groups = k.by_group()["image s0"]
    assert groups["small objects"] == [2, 0, 0] and groups["large objects"] == [0, 0, 2]
    assert groups["surfaces"] == [0, 0, 2] and groups["empty"] == [0, 0, 0]
    other = KByClass((1, 2, 3))
    other.merge(k)
    other.merge(k)
    assert other.by_class()["image s0"]["car"] == [0, 0, 4]
    md = "\n".join(k_tables_markdown(k))
    assert "| small objects | 1.00 (100/0/0; 2) |" in md and "| car | 3.00 (0/0/100; 2) |" in md


def test_k_cell():
    assert k_cell([1, 1, 2], (1, 2, 3)) == "2.25 (25/25/50; 4)"
    assert k_cell([0, 0, 0], (1, 2, 3)) == "-"
