"""LiDAR intensity of the synthetic rig: material reflectance, range and incidence falloff, noise, sensor scale.

A real return's intensity says little about the class on its own: materials of different classes reflect
alike (asphalt and dark paint, concrete and pale paint, foliage is bright in the near infrared), one class
holds many materials, the power falls with range and with the angle of incidence, and every sensor unit
has its own gain. The model:

    intensity = clip(round(scale * 255 * rho * cos_inc * min(1, (R0 / r) ** RANGE_EXPONENT) * (1 + n_m) + n_a), 0, 255)

- rho: the hit surface's diffuse reflectance. Each class has a range of materials (`REFLECTANCE`, ranges
  overlap between classes); every part (an object, a building, a tree) draws its rho uniformly from its
  class's range, ground patches of `GROUND_PATCH_M` do the same, and a texture varies it by +-`TEXTURE`
  within a surface.
- cos_inc: cosine of the angle between the beam and the surface normal (Lambertian).
- r: range in metres; the power falls as r ** -RANGE_EXPONENT beyond R0 (the HDL-32E's partly
  range-compensated output falls slower than the 1 / r^2 of the raw power).
- n_m ~ N(0, MULTIPLICATIVE_NOISE), n_a ~ N(0, ADDITIVE_NOISE): speckle and receiver noise.
- scale: the sensor unit's gain (`sensor_gain` draws one per recording, `GAIN_RANGE`).
"""

from __future__ import annotations

import numpy as np

from tacocc_core.labels import CLASS_IDS, NUM_CLASSES

# (17, 2) diffuse reflectance range (near infrared) of the materials of each class.
REFLECTANCE = np.tile(np.array([[0.10, 0.40]]), (NUM_CLASSES, 1))
for _name, _range in {
    "driveable_surface": (0.05, 0.25),  # asphalt, patched asphalt, concrete
    "sidewalk": (0.12, 0.40),  # concrete, paving stones
    "terrain": (0.10, 0.40),  # soil, dry and wet grass
    "manmade": (0.08, 0.55),  # brick, render, glass, metal
    "vegetation": (0.20, 0.55),  # foliage is bright in the near infrared
    "car": (0.05, 0.60),  # paint from black to white
    "truck": (0.08, 0.60),
    "bus": (0.10, 0.60),
    "pedestrian": (0.08, 0.45),  # clothing
    "bicycle": (0.05, 0.50),
    "barrier": (0.20, 0.65),  # concrete, painted plastic
    "traffic_cone": (0.25, 0.70),  # plastic, part retroreflective
}.items():
    REFLECTANCE[CLASS_IDS[_name]] = _range

R0 = 10.0
RANGE_EXPONENT = 1.0
TEXTURE = 0.15
GROUND_PATCH_M = 4.0
MULTIPLICATIVE_NOISE = 0.1
ADDITIVE_NOISE = 1.0
GAIN_RANGE = (0.6, 1.5)


def _hash01(keys: np.ndarray) -> np.ndarray:
    """(M, D) float keys -> (M,) pseudo-random values in [0, 1), a fixed function of the keys."""
    weights = np.array([12.9898, 78.233, 37.719, 19.1919])[: keys.shape[1]]
    return np.modf(np.abs(np.sin(keys @ weights) * 43758.5453))[0]


def material_reflectance(label: np.ndarray, part: np.ndarray, point: np.ndarray, seed: int) -> np.ndarray:
    """Diffuse reflectance of M hits.

    Args:
        label: (M,) class of the hit.
        part: (M,) index of the hit part (-1: the ground, patches of GROUND_PATCH_M take their own material).
        point: (M, 3) hit point, street frame, metres (ground patches and the texture).
        seed: the recording's seed: one street draws the same materials in every sweep.

    Returns:
        (M,) float64 reflectance inside REFLECTANCE[label] widened by the texture, > 0.
    """
    lo, hi = REFLECTANCE[label, 0], REFLECTANCE[label, 1]
    patch = np.floor(point[:, :2] / GROUND_PATCH_M)
    surface = np.where(part[:, None] >= 0, np.stack([part, np.zeros_like(part)], axis=1), patch + 7919.0)
    draw = _hash01(np.concatenate([surface, np.full((len(part), 1), float(seed % 9973)), label[:, None]], axis=1))
    texture = 1.0 + TEXTURE * (2.0 * _hash01(np.floor(point / 0.25)) - 1.0)
    return np.maximum((lo + (hi - lo) * draw) * texture, 1e-3)


def lidar_intensity(
    reflectance: np.ndarray, range_m: np.ndarray, cos_inc: np.ndarray, gain: float, rng: np.random.Generator
) -> np.ndarray:
    """Intensity (0..255, whole numbers as nuScenes stores them) of M returns; see the module docstring.

    Args:
        reflectance: (M,) diffuse reflectance of the hit surfaces.
        range_m: (M,) range in metres.
        cos_inc: (M,) |cos| of the incidence angle.
        gain: the sensor unit's scale.
        rng: draws the noise.
    """
    falloff = np.minimum(1.0, (R0 / np.maximum(range_m, 1e-3)) ** RANGE_EXPONENT)
    power = gain * 255.0 * reflectance * np.clip(cos_inc, 0.0, 1.0) * falloff
    noisy = power * (1.0 + rng.normal(0.0, MULTIPLICATIVE_NOISE, len(power))) + rng.normal(
        0.0, ADDITIVE_NOISE, len(power)
    )
    return np.clip(np.round(noisy), 0.0, 255.0)


def sensor_gain(rng: np.random.Generator) -> float:
    """One sensor unit's gain, uniform in GAIN_RANGE."""
    return float(rng.uniform(*GAIN_RANGE))
