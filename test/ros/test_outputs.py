"""tacocc_ros.node.outputs: markers, occupancy cloud and diagnostics, against a voxel-by-voxel reference."""

import itertools

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from visualization_msgs.msg import Marker

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import CLASS_NAMES, PALETTE
from tacocc_ros.messages.pointcloud import cloud_to_array
from tacocc_ros.messages.stamps import stamp_to_ns
from tacocc_ros.node.outputs import (
    MarkerBuilder,
    build_cloud,
    build_diagnostics,
    build_markers,
    occupied_voxels,
    pack_rgb,
)

GRID = GridSpec.from_ranges((-3.0, 3.0), (-2.0, 3.0), (-1.0, 1.0), (1.0, 1.0, 0.5))  # 6 x 5 x 4
STAMP = 1_532_402_927_647_951_000


def random_labels(seed, grid=GRID, fill=0.4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 17, size=grid.shape).astype(np.uint8)
    labels[rng.random(grid.shape) > fill] = 0
    labels[rng.random(grid.shape) < 0.05] = 255
    return labels


def reference_voxels(labels, grid, cap):
    """Voxel by voxel: (centre, label) of every occupied voxel, nearest `cap` kept, in grid order."""
    found = []
    for flat, (i, j, k) in enumerate(itertools.product(*(range(n) for n in grid.shape))):
        label = int(labels[i, j, k])
        if label in (0, 255):
            continue
        centre = [lo + (idx + 0.5) * size for lo, idx, size in zip(grid.lower, (i, j, k), grid.voxel_size, strict=True)]
        found.append((sum(c * c for c in centre), flat, tuple(centre), label))
    if cap is not None:
        found = sorted(found)[:cap]
    return [(centre, label) for _, _, centre, label in sorted(found, key=lambda f: f[1])]


@pytest.mark.parametrize(("seed", "cap"), [(0, None), (1, None), (2, 10), (3, 0), (4, 1000)])
def test_markers_match_the_reference(seed, cap):
    labels = random_labels(seed)
    msg = build_markers(labels, GRID, STAMP, "LIDAR_TOP", max_cubes=cap)
    first, rest = msg.markers[0], msg.markers[1:]
    assert first.action == Marker.DELETEALL
    expected = reference_voxels(labels, GRID, cap)
    by_class = {}
    for centre, label in expected:
        by_class.setdefault(label, []).append(centre)
    assert [m.id for m in rest] == sorted(by_class)
    for m in msg.markers:
        assert stamp_to_ns(m.header.stamp) == STAMP and m.header.frame_id == "LIDAR_TOP"
    for m in rest:
        assert m.type == Marker.CUBE_LIST and m.action == Marker.ADD and m.ns == CLASS_NAMES[m.id]
        assert (m.scale.x, m.scale.y, m.scale.z) == (1.0, 1.0, 0.5)
        assert m.pose.orientation.w == 1.0
        assert [round(c * 255) for c in (m.color.r, m.color.g, m.color.b)] == PALETTE[m.id].tolist()
        np.testing.assert_allclose([(p.x, p.y, p.z) for p in m.points], by_class[m.id])


def test_marker_builder_reuses_points_and_stays_correct_across_frames():
    builder = MarkerBuilder(GRID, max_cubes=None, alpha=0.5)
    a = builder.build(random_labels(5), STAMP, "l")
    labels = random_labels(6)
    b = builder.build(labels, STAMP + 1, "l")
    assert stamp_to_ns(b.markers[1].header.stamp) == STAMP + 1 and b.markers[1].color.a == 0.5
    got = sorted((m.id, (p.x, p.y, p.z)) for m in b.markers[1:] for p in m.points)
    want = sorted((label, centre) for centre, label in reference_voxels(labels, GRID, None))
    assert got == want
    shared = {id(p) for m in a.markers[1:] for p in m.points} & {id(p) for m in b.markers[1:] for p in m.points}
    assert shared  # the same voxel is drawn with the same Point object


def test_empty_grid_gives_only_deleteall():
    msg = build_markers(np.zeros(GRID.shape, np.uint8), GRID, STAMP, "l")
    assert [m.action for m in msg.markers] == [Marker.DELETEALL]


@pytest.mark.parametrize(("seed", "cap"), [(7, None), (8, 5)])
def test_cloud_matches_the_reference(seed, cap):
    labels = random_labels(seed)
    msg = build_cloud(labels, GRID, STAMP, "LIDAR_TOP", max_points=cap)
    assert stamp_to_ns(msg.header.stamp) == STAMP and msg.header.frame_id == "LIDAR_TOP"
    assert [f.name for f in msg.fields] == ["x", "y", "z", "label", "rgb"] and msg.point_step == 20
    points = cloud_to_array(msg)
    expected = reference_voxels(labels, GRID, cap)
    assert len(points) == len(expected)
    np.testing.assert_allclose(np.stack([points["x"], points["y"], points["z"]], 1), [c for c, _ in expected])
    assert points["label"].tolist() == [label for _, label in expected]
    rgb = points["rgb"].view("<u4")
    assert [((v >> 16) & 255, (v >> 8) & 255, v & 255) for v in rgb.tolist()] == [
        tuple(PALETTE[label].tolist()) for _, label in expected
    ]


def test_pack_rgb_bits():
    packed = pack_rgb(np.array([[0, 150, 245], [255, 0, 255]], np.uint8))
    assert packed.dtype == np.float32
    assert packed.view(np.uint32).tolist() == [0x0096F5, 0xFF00FF]


def test_occupied_voxels_rejects_a_grid_of_another_shape():
    with pytest.raises(ValueError, match=r"expected a \(6, 5, 4\) uint8 label grid, got \(6, 5, 3\) uint8"):
        occupied_voxels(np.zeros((6, 5, 3), np.uint8), GRID)
    with pytest.raises(ValueError, match="max_voxels must be >= 0"):
        occupied_voxels(np.zeros(GRID.shape, np.uint8), GRID, -1)


def stats(new_dropped=0, new_failed=0):
    return {
        "rates_hz": {"/LIDAR_TOP": 20.0, "/CAM_FRONT/image_rect/compressed": 12.0},
        "latency_ms": {"p50": 41.25, "p99": None, "max": 60.0},
        "published": 17,
        "dropped": {"incomplete:CAM_BACK": 2},
        "failed": {"decode": 1},
        "k_histogram": {1: 10, 3: 5},
        "new_dropped": new_dropped,
        "new_failed": new_failed,
    }


def test_diagnostics_values_and_levels():
    ok = build_diagnostics(stats(), STAMP, hardware_id="car1")
    assert stamp_to_ns(ok.header.stamp) == STAMP
    (status,) = ok.status
    assert status.level == DiagnosticStatus.OK and status.hardware_id == "car1"
    values = {kv.key: kv.value for kv in status.values}
    assert values == {
        "rate /CAM_FRONT/image_rect/compressed (Hz)": "12.00",
        "rate /LIDAR_TOP (Hz)": "20.00",
        "latency p50 (ms)": "41.2",
        "latency p99 (ms)": "n/a",
        "latency max (ms)": "60.0",
        "published": "17",
        "dropped incomplete:CAM_BACK": "2",
        "failed decode": "1",
        "k=1 count": "10",
        "k=3 count": "5",
    }
    warn = build_diagnostics(stats(new_dropped=1), STAMP).status[0]
    assert warn.level == DiagnosticStatus.WARN and warn.message == "1 dropped, 0 failed since last report"
