import numpy as np
import pytest

from tacocc_core.data.synthetic.intensity import (
    GAIN_RANGE,
    REFLECTANCE,
    lidar_intensity,
    material_reflectance,
    sensor_gain,
)
from tacocc_core.data.synthetic.raycast import SpinningGrid, cast
from tacocc_core.data.synthetic.rig import surround_rig
from tacocc_core.data.synthetic.sensors import LIDAR_ELEVATIONS_DEG, LIDAR_MAX_RANGE, lidar_sweep
from tacocc_core.data.synthetic.street import build_street
from tacocc_core.labels import CLASS_IDS


def overlaps(a: str, b: str) -> bool:
    (lo_a, hi_a), (lo_b, hi_b) = REFLECTANCE[CLASS_IDS[a]], REFLECTANCE[CLASS_IDS[b]]
    return lo_a < hi_b and lo_b < hi_a


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("driveable_surface", "sidewalk"),
        ("driveable_surface", "car"),
        ("car", "manmade"),
        ("vegetation", "terrain"),
        ("pedestrian", "car"),
        ("barrier", "traffic_cone"),
        ("bus", "truck"),
    ],
)
def test_material_ranges_overlap_between_classes(a, b):
    assert overlaps(a, b)


def test_every_class_shares_its_materials_with_another():
    used = [CLASS_IDS[n] for n in CLASS_IDS if n != "empty"]
    for c in used:
        others = [d for d in used if d != c]
        lo, hi = REFLECTANCE[c]
        assert any(REFLECTANCE[d, 0] < hi and lo < REFLECTANCE[d, 1] for d in others)


def test_a_part_keeps_its_material_and_parts_of_one_class_differ():
    label = np.full(200, CLASS_IDS["car"])
    point = np.zeros((200, 3))
    part = np.repeat(np.arange(100, 300), 1)
    rho = material_reflectance(label, part, point, seed=1)
    again = material_reflectance(label, part, point, seed=1)
    np.testing.assert_array_equal(rho, again)
    lo, hi = REFLECTANCE[CLASS_IDS["car"]]
    assert rho.std() > 0.1 * (hi - lo)  # 200 cars: many paints
    assert rho.min() > 0 and rho.max() <= hi * 1.2
    assert not np.array_equal(rho, material_reflectance(label, part, point, seed=2))


def test_range_incidence_gain_and_noise():
    rng = np.random.default_rng(0)
    n = 4000
    rho = np.full(n, 0.3)

    def mean(range_m=10.0, cos=1.0, gain=1.0):
        return lidar_intensity(rho, np.full(n, range_m), np.full(n, cos), gain, rng).mean()

    near, far = mean(10.0), mean(40.0)
    assert far == pytest.approx(near / 4, rel=0.1)  # 1 / r beyond R0
    assert mean(10.0, cos=0.25) == pytest.approx(near / 4, rel=0.1)
    assert mean(gain=1.5) == pytest.approx(1.5 * near, rel=0.05)
    values = lidar_intensity(rho, np.full(n, 10.0), np.ones(n), 1.0, rng)
    assert values.std() > 3  # speckle and receiver noise
    assert np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255
    gains = [sensor_gain(np.random.default_rng(s)) for s in range(50)]
    assert GAIN_RANGE[0] <= min(gains) < max(gains) <= GAIN_RANGE[1]


def test_intensity_hints_at_the_class_without_naming_it():
    """On a generated sweep the best guess of the class from the intensity alone (a 64-bin histogram, the
    Bayes rule on the very points it was fitted on) is right for well under half the points more than the
    majority class; with one intensity per class it was right for about 3 in 4."""
    street = build_street(np.random.default_rng([0, 0]), 4.0, (0.0, 0.0))
    rig = surround_rig()
    points, _ = lidar_sweep(street, 1.0, rig.lidar2ego, 540, np.random.default_rng(0), gain=1.0, material_seed=3)
    grid = SpinningGrid(np.deg2rad(LIDAR_ELEVATIONS_DEG), 540, street.ego2street(1.0) @ rig.lidar2ego)
    hits = cast(grid, street.parts_at(1.0), max_range=LIDAR_MAX_RANGE)
    label = hits.label[np.isfinite(hits.t)].astype(int)
    assert len(label) == len(points)
    bins = np.clip((points[:, 3] / 4).astype(int), 0, 63)
    table = np.zeros((64, 17))
    np.add.at(table, (bins, label), 1)
    bayes = table.max(axis=1).sum() / len(label)
    majority = np.bincount(label).max() / len(label)
    assert majority < bayes < 0.6
