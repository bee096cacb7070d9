import collections

import numpy as np

from tacocc_core.data.synthetic.street import CATEGORY, build_street
from tacocc_core.labels import CLASS_IDS
from tacocc_core.train.k_by_class import SIZE_GROUPS


def test_every_street_holds_small_and_large_objects_of_every_class():
    """Chosen k per object size (paper Table V) needs both groups in every scene, each class present."""
    small, large = SIZE_GROUPS["small objects"], SIZE_GROUPS["large objects"]
    totals = collections.Counter()
    for seed in range(6):
        street = build_street(np.random.default_rng(seed), 8.0, (0.0, 0.0))
        names = collections.Counter(o.name for o in street.objects)
        totals.update(names)
        assert sum(names[n] for n in small) >= 15, (seed, names)
        assert sum(names[n] for n in large) >= 8, (seed, names)
        assert names["construction_vehicle"] == 1 and names["motorcycle"] >= 2
    for name in (*small, *large):  # every object class, over a few streets
        assert totals[name] > 0, name
        assert name in CATEGORY and name in CLASS_IDS


def test_parked_vehicles_and_motorcycles_overlap_nothing():
    """Construction vehicles, trailers and motorcycles are placed where no other still object stands
    (street-aligned box extents: their yaws are 0 or pi). Oncoming trucks and buses may clip the
    construction vehicle's box by up to 0.1 m at the lane edge."""
    placed = {"construction_vehicle", "trailer", "motorcycle"}
    for seed in range(6):
        street = build_street(np.random.default_rng(seed), 8.0, (0.0, 0.0))
        boxes = []
        for o in street.objects:
            if np.linalg.norm(o.velocity) > 0:
                continue
            along, across = (o.size[0], o.size[1]) if abs(np.sin(o.yaw)) < 1e-6 else (o.size[1], o.size[0])
            boxes.append(
                (
                    o.center[0] - along / 2,
                    o.center[0] + along / 2,
                    o.center[1] - across / 2,
                    o.center[1] + across / 2,
                    o.name,
                )
            )
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                if a[4] not in placed and b[4] not in placed:
                    continue
                overlap = a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]
                assert not overlap, (seed, a, b)
