"""Sensors of the synthetic rig: camera images, LiDAR sweeps and occupancy labels from one street.

Appearance: each class has its own base colour (distinct hue or brightness) modulated by Lambert shading
and a brightness-only texture (windows, paving, noise), so that colour tells the class and the
network has a visual cue to learn; the sky is a blue gradient. The LiDAR is modelled on the nuScenes
Velodyne HDL-32E: 32 beams from +10.67 to -30.67 degrees (1.33 degree steps), 20 Hz; its intensity comes
from the hit material's reflectance with range and incidence falloff, noise and the unit's gain
(intensity.py), so that it hints at the class without naming it. A `Domain` (domain.py) changes colours,
lighting and the LiDAR's beams; the module constants are those of the built-in domain.
"""

from __future__ import annotations

import numpy as np

from tacocc_core.data.synthetic.domain import Domain
from tacocc_core.data.synthetic.intensity import lidar_intensity, material_reflectance
from tacocc_core.data.synthetic.primitives import inside_part
from tacocc_core.data.synthetic.raycast import Hits, PinholeGrid, SpinningGrid, cast
from tacocc_core.data.synthetic.street import Street, ground_label
from tacocc_core.geometry import GridSpec, invert_transform, transform_points
from tacocc_core.labels import CLASS_IDS, EMPTY, NUM_CLASSES

LIDAR_ELEVATIONS_DEG = np.linspace(10.67, -30.67, 32)
LIDAR_MAX_RANGE = 70.0

# (17, 3) float RGB base colour per class (rows of classes that never appear are grey).
APPEARANCE = np.full((NUM_CLASSES, 3), 128.0)
for _name, _rgb in {
    "driveable_surface": (70, 70, 82),
    "sidewalk": (185, 160, 120),
    "terrain": (125, 160, 60),
    "manmade": (205, 105, 80),
    "vegetation": (30, 110, 35),
    "car": (25, 65, 205),
    "truck": (135, 45, 175),
    "bus": (235, 205, 30),
    "pedestrian": (225, 35, 35),
    "bicycle": (240, 110, 205),
    "barrier": (235, 235, 235),
    "traffic_cone": (255, 120, 0),
}.items():
    APPEARANCE[CLASS_IDS[_name]] = _rgb

DEFAULT_DOMAIN = Domain()


def appearance(domain: Domain) -> np.ndarray:
    """(17, 3) float RGB base colour per class: APPEARANCE with the domain's colours replaced."""
    if not domain.colours:
        return APPEARANCE
    out = APPEARANCE.copy()
    for name, rgb in domain.colours:
        out[CLASS_IDS[name]] = rgb
    return out


def _hash_noise(p: np.ndarray, cell: float) -> np.ndarray:
    """(M, 3) points -> (M,) pseudo-random values in [0, 1) constant over cubes of edge `cell`."""
    q = np.floor(p / cell)
    return np.modf(np.abs(np.sin(q @ np.array([12.9898, 78.233, 37.719])) * 43758.5453))[0]


def _texture(label: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(M,) brightness factor in (0, 1] from class and street-frame hit point."""
    f = 0.9 + 0.1 * _hash_noise(p, 0.5)
    man = label == CLASS_IDS["manmade"]
    windows = (np.modf(np.abs(p[:, 0]) / 3.0)[0] < 0.45) & (np.modf(p[:, 2] / 3.0)[0] > 0.4) & (p[:, 2] > 1.0)
    f = np.where(man & windows, 0.6, f)
    side = label == CLASS_IDS["sidewalk"]
    grout = (np.modf(np.abs(p[:, 0]) / 1.2)[0] < 0.06) | (np.modf(np.abs(p[:, 1]) / 1.2)[0] < 0.06)
    f = np.where(side & grout, 0.8, f)
    green = (label == CLASS_IDS["vegetation"]) | (label == CLASS_IDS["terrain"])
    return np.where(green, 0.75 + 0.25 * _hash_noise(p, 0.3), f)


def shade(hits: Hits, dirs: np.ndarray, domain: Domain = DEFAULT_DOMAIN) -> np.ndarray:
    """(R,) hits of unit rays `dirs` (R, 3) -> (R, 3) uint8 RGB, colours and sun of `domain`."""
    lit = 0.55 + 0.45 * np.clip(hits.normal @ domain.sun_direction(), 0.0, 1.0)
    if domain.brightness != 1.0:
        lit = lit * domain.brightness
    finite = np.where(np.isfinite(hits.point), hits.point, 0.0)
    colour = appearance(domain)[hits.label] * (lit * _texture(hits.label, finite))[:, None]
    sky = hits.part == -2
    up = np.clip(dirs[sky, 2], 0.0, 1.0)[:, None]
    colour[sky] = np.array([200.0, 222.0, 245.0]) * (1 - up) + np.array([110.0, 160.0, 230.0]) * up
    return np.clip(colour, 0, 255).astype(np.uint8)


def render_camera(
    street: Street,
    t: float,
    cam2ego: np.ndarray,
    cam2img: np.ndarray,
    size: tuple[int, int],
    domain: Domain = DEFAULT_DOMAIN,
) -> tuple[np.ndarray, np.ndarray]:
    """Image of a camera mounted at `cam2ego` at time t -> ((H, W, 3) uint8 RGB, (H, W) uint8 class ids).

    `domain` gives the colours and the lighting; the mount is `cam2ego` as given.
    """
    grid = PinholeGrid(cam2img, street.ego2street(t) @ cam2ego, size)
    hits = cast(grid, street.parts_at(t))
    rgb = shade(hits, grid.dirs.reshape(-1, 3), domain)
    return rgb.reshape(*size, 3), hits.label.reshape(size)


def lidar_sweep(
    street: Street,
    t: float,
    lidar2ego: np.ndarray,
    azimuths: int,
    rng: np.random.Generator,
    gain: float = 1.0,
    material_seed: int = 0,
    elevations_deg: np.ndarray = LIDAR_ELEVATIONS_DEG,
) -> tuple[np.ndarray, np.ndarray]:
    """One revolution at time t -> ((N, 5) float32 [x, y, z, intensity, ring] in the LiDAR frame, (N,) instance).

    Returns every ray that hits something within LIDAR_MAX_RANGE, with 1 cm range noise. `gain` is the
    sensor unit's intensity scale, `material_seed` picks the street's materials (the same in every sweep
    of one recording); `rng` draws the range and intensity noise. `elevations_deg` (B,) are the beams,
    top first (ring 0); the default is the HDL-32E's.
    """
    lidar2street = street.ego2street(t) @ lidar2ego
    grid = SpinningGrid(np.deg2rad(elevations_deg), azimuths, lidar2street)
    hits = cast(grid, street.parts_at(t), max_range=LIDAR_MAX_RANGE)
    keep = np.isfinite(hits.t)
    local = grid.local_dirs.reshape(-1, 3)[keep]
    rng_t = hits.t[keep] + rng.normal(0.0, 0.01, keep.sum())
    xyz = local * rng_t[:, None]
    cos_inc = np.abs(np.einsum("ij,ij->i", hits.normal[keep], grid.dirs.reshape(-1, 3)[keep]))
    rho = material_reflectance(hits.label[keep], hits.part[keep], hits.point[keep], material_seed)
    intensity = lidar_intensity(rho, rng_t, cos_inc, gain, rng)
    ring = np.broadcast_to(np.arange(grid.shape[0])[:, None], grid.shape).reshape(-1)[keep]
    points = np.concatenate([xyz, intensity[:, None], ring[:, None]], axis=1).astype(np.float32)
    return points, hits.instance[keep]


def voxelize(street: Street, t: float, lidar2ego: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Occupancy labels on `grid` (LiDAR frame at time t) -> (X, Y, Z) uint8.

    Rules: a voxel that the ground plane z = 0 passes through takes the ground class at its centre; a
    voxel that contains any of 27 sample points (corners, edge and face midpoints, centre) inside a part
    takes that part's class, objects over scenery over ground. Everything else is empty; the volume
    under the ground is empty too (surfaces, as SurroundOcc labels are).
    """
    lidar2street = street.ego2street(t) @ lidar2ego
    street2lidar = invert_transform(lidar2street)
    labels = np.full(grid.shape, EMPTY, dtype=np.uint8)
    size = np.asarray(grid.voxel_size)
    centers = grid.centers().reshape(-1, 3)
    cz = centers @ lidar2street[2, :3] + lidar2street[2, 3]
    half_span = 0.5 * np.abs(lidar2street[2, :3]) @ size
    crossing = np.abs(cz) <= half_span
    ground_pts = transform_points(lidar2street, centers[crossing])
    labels.reshape(-1)[np.flatnonzero(crossing)] = ground_label(ground_pts[:, 0], ground_pts[:, 1])

    parts = street.parts_at(t)
    order = np.argsort(parts.instance >= 0, kind="stable")  # scenery first, objects overwrite it
    radius = parts.radius
    shape = np.asarray(grid.shape)
    for i in order:
        c = transform_points(street2lidar, parts.center[i][None])[0]
        lo = np.floor((c - radius[i] - np.asarray(grid.lower)) / size).astype(int) - 1
        hi = np.ceil((c + radius[i] - np.asarray(grid.lower)) / size).astype(int) + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
        if np.any(lo >= hi):
            continue
        # Inside-test on the half-voxel lattice of the window, shared by neighbouring voxels: lattice
        # point 2k is the lower face of voxel k, 2k+1 its centre, 2k+2 its upper face.
        axes = [np.asarray(grid.lower)[a] + np.arange(2 * lo[a], 2 * hi[a] + 1) * size[a] / 2 for a in range(3)]
        lattice = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        lshape = lattice.shape[:3]
        inside = inside_part(i, parts, transform_points(lidar2street, lattice.reshape(-1, 3))).reshape(lshape)
        if not inside.any():
            continue
        n = hi - lo
        occupied = np.zeros(tuple(n), dtype=bool)
        for dx in range(3):
            for dy in range(3):
                for dz in range(3):
                    occupied |= inside[dx : dx + 2 * n[0] : 2, dy : dy + 2 * n[1] : 2, dz : dz + 2 * n[2] : 2]
        view = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        view[occupied] = parts.label[i]
    return labels
