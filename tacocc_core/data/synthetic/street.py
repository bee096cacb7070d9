"""A procedural street: ground regions, static scenery and moving objects, with the ego trajectory.

Street frame: x along the road (the ego drives towards +x), y to the left, z up, ground at z = 0.
Cross-section (|y|, metres): road 0..5 (lanes at +-1.75, parking strip 3.5..5 on the +y side),
sidewalk 5..8, terrain 8..12, buildings beyond 12. `street2global` places the street in the world.
Objects move on straight lines at constant velocity, so positions at any time t (seconds from the first
keyframe) are `center + velocity * t`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tacocc_core.data.synthetic.primitives import BOX, CYLINDER, ELLIPSOID, Parts
from tacocc_core.geometry import make_transform
from tacocc_core.labels import CLASS_IDS

ROAD_HALF_WIDTH = 5.0
SIDEWALK_OUTER = 8.0
TERRAIN_OUTER = 12.0
EGO_LANE_Y = -1.75

# nuScenes category of each annotated class, with the attribute of a moving and of a still object.
CATEGORY = {
    "car": ("vehicle.car", "vehicle.moving", "vehicle.parked"),
    "truck": ("vehicle.truck", "vehicle.moving", "vehicle.parked"),
    "bus": ("vehicle.bus.rigid", "vehicle.moving", "vehicle.stopped"),
    "pedestrian": ("human.pedestrian.adult", "pedestrian.moving", "pedestrian.standing"),
    "bicycle": ("vehicle.bicycle", "cycle.with_rider", "cycle.without_rider"),
    "motorcycle": ("vehicle.motorcycle", "cycle.with_rider", "cycle.without_rider"),
    "trailer": ("vehicle.trailer", "vehicle.moving", "vehicle.parked"),
    "construction_vehicle": ("vehicle.construction", "vehicle.moving", "vehicle.parked"),
    "barrier": ("movable_object.barrier", None, None),
    "traffic_cone": ("movable_object.trafficcone", None, None),
}


@dataclass
class StreetObject:
    """An annotated object: one box (its annotation) made of one or more parts.

    Args:
        name: occupancy class name (a key of CATEGORY).
        center: (3,) gravity centre at t = 0, street frame.
        size: (l, w, h) metres.
        yaw: heading about z (radians, street frame).
        velocity: (2,) m/s in the street frame.
    """

    name: str
    center: np.ndarray
    size: np.ndarray
    yaw: float
    velocity: np.ndarray

    def center_at(self, t: float) -> np.ndarray:
        return self.center + np.array([self.velocity[0], self.velocity[1], 0.0]) * t


@dataclass
class Street:
    """Everything needed to render one scene at any time.

    Args:
        static: parts that never move (buildings, trees), instance -1.
        objects: annotated objects, index = instance id.
        ego_speed: m/s along +x; the ego is at (ego_speed * t, EGO_LANE_Y, 0), yaw 0.
        street2global: (4, 4) placement of the street in the world.
        length: (x_min, x_max) of the modelled street.
    """

    static: Parts
    objects: list[StreetObject]
    ego_speed: float
    street2global: np.ndarray
    length: tuple[float, float]

    def ego2street(self, t: float) -> np.ndarray:
        """(4, 4) ego pose at time t in the street frame."""
        return make_transform(np.eye(3), np.array([self.ego_speed * t, EGO_LANE_Y, 0.0]))

    def parts_at(self, t: float) -> Parts:
        """All parts (static, then one or two per object) at time t."""
        kinds, centers, halves, yaws, labels, insts = [], [], [], [], [], []
        for idx, obj in enumerate(self.objects):
            c = obj.center_at(t)
            length, width, height = obj.size
            label = CLASS_IDS[obj.name]
            if obj.name in ("pedestrian", "traffic_cone"):
                kinds.append(CYLINDER)
                halves.append([width / 2, width / 2, height / 2])
            else:
                kinds.append(BOX)
                halves.append([length / 2, width / 2, height / 2])
            centers.append(c)
            yaws.append(obj.yaw)
            labels.append(label)
            insts.append(idx)
        s = self.static
        if not kinds:
            return s
        return Parts(
            kind=np.concatenate([s.kind, np.array(kinds, dtype=np.int8)]),
            center=np.concatenate([s.center, np.array(centers, dtype=np.float64)]),
            half=np.concatenate([s.half, np.array(halves, dtype=np.float64)]),
            yaw=np.concatenate([s.yaw, np.array(yaws, dtype=np.float64)]),
            label=np.concatenate([s.label, np.array(labels, dtype=np.uint8)]),
            instance=np.concatenate([s.instance, np.array(insts, dtype=np.int64)]),
        )


def ground_label(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(M,) street-frame ground coordinates -> (M,) uint8 class of the ground there."""
    ay = np.abs(np.asarray(y))
    out = np.full(ay.shape, CLASS_IDS["terrain"], dtype=np.uint8)
    out[ay < SIDEWALK_OUTER] = CLASS_IDS["sidewalk"]
    out[ay < ROAD_HALF_WIDTH] = CLASS_IDS["driveable_surface"]
    return out


def build_street(rng: np.random.Generator, duration_s: float, global_offset: tuple[float, float]) -> Street:
    """Draw a street for a drive of `duration_s` seconds; every draw comes from `rng` (deterministic)."""
    ego_speed = float(rng.uniform(5.0, 8.0))
    x0, x1 = -70.0, ego_speed * duration_s + 70.0
    static: dict[str, list] = {k: [] for k in ("kind", "center", "half", "yaw", "label")}

    def add(kind: int, center, half, label: str) -> None:
        static["kind"].append(kind)
        static["center"].append(center)
        static["half"].append(half)
        static["yaw"].append(0.0)
        static["label"].append(CLASS_IDS[label])

    for side in (1.0, -1.0):
        x = x0
        while x < x1:  # buildings
            width, depth, height = rng.uniform(8, 20), rng.uniform(8, 14), rng.uniform(5, 16)
            y_near = TERRAIN_OUTER + rng.uniform(0.0, 2.0)
            add(
                BOX,
                [x + width / 2, side * (y_near + depth / 2), height / 2],
                [width / 2, depth / 2, height / 2],
                "manmade",
            )
            x += width + rng.uniform(0.0, 6.0)
        x = x0 + rng.uniform(0, 8)
        while x < x1:  # trees on the terrain strip
            y = side * rng.uniform(9.0, 11.0)
            trunk_h, crown = rng.uniform(2.0, 3.0), rng.uniform(1.3, 2.2)
            add(CYLINDER, [x, y, trunk_h / 2], [0.2, 0.2, trunk_h / 2], "vegetation")
            add(ELLIPSOID, [x, y, trunk_h + crown * 0.8], [crown, crown, crown * 0.9], "vegetation")
            x += rng.uniform(8.0, 16.0)

    objects: list[StreetObject] = []

    def obj(name: str, x: float, y: float, size, yaw: float, speed: float) -> None:
        size = np.asarray(size, dtype=np.float64)
        vel = np.array([np.cos(yaw), np.sin(yaw)]) * speed
        objects.append(StreetObject(name, np.array([x, y, size[2] / 2]), size, float(yaw), vel))

    # A works zone on the +y side: barriers on the sidewalk edge, cones at the lane edge, a parked
    # construction vehicle just after it, no other parking there.
    work_x = float(rng.uniform(10.0, max(12.0, x1 - 80.0)))
    for k in range(int(rng.integers(3, 7))):
        obj("barrier", work_x + 2.2 * k, 5.4, [2.0, 0.5, 1.0], 0.0, 0.0)
    for k in range(int(rng.integers(4, 8))):
        obj("traffic_cone", work_x + 1.0 + 1.5 * k, 3.2, [0.4, 0.4, 0.7], 0.0, 0.0)
    obj("construction_vehicle", work_x + 17.0, 4.2, [6.5, 2.6, 3.0], 0.0, 0.0)
    # Parked cars on the +y parking strip, now and then a trailer.
    x = x0 + rng.uniform(0, 6)
    while x < x1:
        if not (work_x - 6 < x < work_x + 26) and rng.uniform() < 0.6:
            if rng.uniform() < 0.2:
                obj("trailer", x, 4.2, [5.5, 2.3, 2.8], float(rng.choice([0.0, np.pi])), 0.0)
            else:
                obj("car", x, 4.2, [4.4, 1.8, 1.5], float(rng.choice([0.0, np.pi])), 0.0)
        x += rng.uniform(6.5, 9.0)
    # Traffic in the ego lane (ahead, never slower than the ego by much) and in the oncoming lane.
    for _ in range(int(rng.integers(1, 3))):
        obj("car", float(rng.uniform(25, 60)), EGO_LANE_Y, [4.5, 1.9, 1.6], 0.0, ego_speed + rng.uniform(0.0, 2.0))
    oncoming_x = x1
    for _ in range(int(rng.integers(4, 7))):
        name = str(rng.choice(["car", "truck", "bus"]))
        size = {"car": [4.5, 1.9, 1.6], "truck": [7.5, 2.5, 3.2], "bus": [11.0, 2.9, 3.4]}[name]
        oncoming_x -= rng.uniform(15.0, 35.0)
        obj(name, oncoming_x, -EGO_LANE_Y, size, np.pi, float(rng.uniform(5.0, 10.0)))
    # Cyclists at the right edge of the ego lane, motorcycles parked on the -y sidewalk edge,
    # pedestrians on both sidewalks.
    for _ in range(int(rng.integers(2, 4))):
        obj("bicycle", float(rng.uniform(-20, x1 - 60)), -4.2, [1.7, 0.6, 1.7], 0.0, float(rng.uniform(2.5, 4.5)))
    moto_x = float(rng.uniform(x0 + 40, max(x0 + 41, x1 - 60)))
    for k in range(int(rng.integers(2, 5))):
        obj("motorcycle", moto_x + 2.5 * k, -5.4, [2.1, 0.8, 1.4], float(rng.choice([0.0, np.pi])), 0.0)
    for _ in range(int(rng.integers(8, 15))):
        side = float(rng.choice([1.0, -1.0]))
        heading = float(rng.choice([0.0, np.pi]))
        speed = float(rng.choice([0.0, rng.uniform(0.8, 1.6)]))
        obj(
            "pedestrian",
            float(rng.uniform(x0 + 30, x1 - 30)),
            side * rng.uniform(5.9, 7.4),
            [0.6, 0.6, 1.75],
            heading,
            speed,
        )

    yaw = float(rng.uniform(-np.pi, np.pi))
    c, s = np.cos(yaw), np.sin(yaw)
    street2global = make_transform(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]), np.array([*global_offset, 0.0]))
    parts = Parts(
        kind=np.array(static["kind"], dtype=np.int8),
        center=np.array(static["center"], dtype=np.float64).reshape(-1, 3),
        half=np.array(static["half"], dtype=np.float64).reshape(-1, 3),
        yaw=np.array(static["yaw"], dtype=np.float64),
        label=np.array(static["label"], dtype=np.uint8),
        instance=np.full(len(static["kind"]), -1, dtype=np.int64),
    )
    return Street(parts, objects, ego_speed, street2global, (x0, x1))
