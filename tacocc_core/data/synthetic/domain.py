"""The domain of the synthetic scenes: how the recording vehicle's sensors and the world's surfaces look.

A `Domain` changes what the rig records without changing the streets: surface colours, lighting, the
LiDAR's beams and intensity scale, and where the cameras sit on the car. The defaults are the built-in
domain (the one `tacocc generate-scenes` writes without `--domain`); a domain that differs from it gives a
"vehicle" a checkpoint trained on the built-in one has never seen. A YAML file with any of the fields sets
the others to their defaults, e.g.:

    name: vehicle-b
    colours: {car: [200, 200, 210], driveable_surface: [110, 100, 95]}
    brightness: 0.8
    sun: [-0.5, 0.4, 0.6]
    lidar_beams: 16
    lidar_elevation_deg: [15.0, -15.0]
    intensity_scale: 0.6
    camera_height_offset_m: 0.3
    camera_pitch_deg: 5.0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tacocc_core.labels import CLASS_IDS


@dataclass(frozen=True)
class Domain:
    """What the recording vehicle and the world's surfaces look like (defaults: the built-in domain).

    Args:
        name: the vehicle's name, written to the `log` table's `vehicle` field.
        colours: (class name, (r, g, b) in 0..255) pairs replacing those classes' base colours.
        brightness: factor on the lit surface colours (the sky keeps its colours), > 0.
        sun: direction towards the sun, street frame (x along the street, z up); normalised, non-zero.
        lidar_beams: beams of the spinning LiDAR, evenly spaced over `lidar_elevation_deg`.
        lidar_elevation_deg: (top, bottom) beam elevation in degrees, top > bottom, both within +-90.
        intensity_scale: factor on every LiDAR unit's gain (intensity before its clip to 0..255), >= 0.
        camera_height_offset_m: metres added to every camera's height above the ground (ego z).
        camera_pitch_deg: every camera tilted down by this many degrees (negative: up), within +-45.
    """

    name: str = "tacocc-synth"
    colours: tuple[tuple[str, tuple[float, float, float]], ...] = ()
    brightness: float = 1.0
    sun: tuple[float, float, float] = (0.4, 0.3, 0.86)
    lidar_beams: int = 32
    lidar_elevation_deg: tuple[float, float] = (10.67, -30.67)
    intensity_scale: float = 1.0
    camera_height_offset_m: float = 0.0
    camera_pitch_deg: float = 0.0

    def validate(self, where: str = "domain") -> None:
        """Raise ValueError naming `where` and the field of the first bad value."""
        if not self.name:
            raise ValueError(f"{where}: name must not be empty")
        for cls, rgb in self.colours:
            if cls not in CLASS_IDS:
                raise ValueError(f"{where}: colours: unknown class {cls!r}; known: {sorted(CLASS_IDS)}")
            if len(rgb) != 3 or not all(0.0 <= float(v) <= 255.0 for v in rgb):
                raise ValueError(f"{where}: colours.{cls}: expected three values in 0..255, got {list(rgb)}")
        if not (math.isfinite(self.brightness) and self.brightness > 0):
            raise ValueError(f"{where}: brightness must be > 0, got {self.brightness}")
        if len(self.sun) != 3 or not np.all(np.isfinite(self.sun)) or float(np.linalg.norm(self.sun)) == 0.0:
            raise ValueError(f"{where}: sun must be a finite non-zero 3-vector, got {list(self.sun)}")
        if self.lidar_beams < 1:
            raise ValueError(f"{where}: lidar_beams must be >= 1, got {self.lidar_beams}")
        top, bottom = self.lidar_elevation_deg
        if not (90.0 >= top > bottom >= -90.0):
            raise ValueError(f"{where}: lidar_elevation_deg must be [top, bottom] within +-90, top > bottom")
        if not (math.isfinite(self.intensity_scale) and self.intensity_scale >= 0):
            raise ValueError(f"{where}: intensity_scale must be >= 0, got {self.intensity_scale}")
        if not math.isfinite(self.camera_height_offset_m):
            raise ValueError(f"{where}: camera_height_offset_m must be finite")
        if not -45.0 <= self.camera_pitch_deg <= 45.0:
            raise ValueError(f"{where}: camera_pitch_deg must be within +-45, got {self.camera_pitch_deg}")

    def sun_direction(self) -> np.ndarray:
        """(3,) unit vector towards the sun, street frame."""
        return np.array(self.sun) / np.linalg.norm(self.sun)

    def lidar_elevations(self) -> np.ndarray:
        """(lidar_beams,) beam elevations in degrees, top first (the ring index order)."""
        return np.linspace(self.lidar_elevation_deg[0], self.lidar_elevation_deg[1], self.lidar_beams)

    def mount_camera(self, cam2ego: np.ndarray) -> np.ndarray:
        """(4, 4) camera -> ego of the built-in mount -> the same camera raised and pitched by this domain.

        The camera frame is the optical one (x right, y down, z forward): the pitch turns about its x axis,
        so that a positive pitch moves the optical axis towards the ground.
        """
        out = cam2ego.copy()
        if self.camera_pitch_deg:
            a = math.radians(self.camera_pitch_deg)
            down = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), math.sin(a)], [0.0, -math.sin(a), math.cos(a)]])
            out[:3, :3] = cam2ego[:3, :3] @ down
        if self.camera_height_offset_m:
            out[2, 3] += self.camera_height_offset_m
        return out


def load_domain(path: str | os.PathLike[str]) -> Domain:
    """Read a domain YAML (a mapping with any of `Domain`'s fields); errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: domain file not found") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of domain fields, got {type(data).__name__}")
    known = {f.name for f in fields(Domain)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "colours":
                if not isinstance(value, dict):
                    raise ValueError("colours: expected a mapping of class name to [r, g, b]")
                kwargs[key] = tuple((str(k), tuple(float(v) for v in rgb)) for k, rgb in value.items())
            elif key in ("sun", "lidar_elevation_deg"):
                kwargs[key] = tuple(float(v) for v in value)
            elif key == "lidar_beams":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"lidar_beams: expected a whole number, got {value!r}")
                kwargs[key] = value
            elif key == "name":
                kwargs[key] = str(value)
            else:
                kwargs[key] = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
    domain = Domain(**kwargs)
    domain.validate(str(path))
    return domain
