"""The temporally enhanced Gaussian primitives of paper Eq. 3, as one dataclass of tensors.

G_i = {mu_i, r_i, s_i, c_i, alpha_i, mu_t, sigma_t}: position, rotation, scale, colour (spherical
harmonics), opacity, temporal centre and temporal bandwidth. The values are the activated ones
(metres, unit-free opacity in [0, 1], seconds); whatever produces them (the parameter net, an
optimiser working on raw values) applies its own activations first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import torch

FIELDS = ("means", "quats", "scales", "opacities", "sh", "mu_t", "sigma_t")


def sh_coefficients(degree: int) -> int:
    """Number of spherical-harmonics coefficients per colour channel up to `degree`: (degree + 1)^2."""
    return (degree + 1) ** 2


def sh_degree_of(num_coefficients: int) -> int:
    """Inverse of `sh_coefficients`; raises for a count that is not a square of 1..4."""
    degree = math.isqrt(num_coefficients) - 1
    if degree < 0 or degree > 3 or sh_coefficients(degree) != num_coefficients:
        raise ValueError(f"{num_coefficients} SH coefficients per channel: expected 1, 4, 9 or 16 (degree 0..3)")
    return degree


@dataclasses.dataclass
class Gaussians:
    """N temporally enhanced 3D Gaussians.

    Args:
        means: (N, 3) float, centres in metres, LiDAR frame of the frame being rendered.
        quats: (N, 4) float, rotations as quaternions in (w, x, y, z) order; normalised when rendered,
            so any non-zero length is accepted.
        scales: (N, 3) float, standard deviations along the rotated axes, metres, > 0.
        opacities: (N,) float in [0, 1].
        sh: (N, K, 3) float, spherical-harmonics colour coefficients, K = (degree + 1)^2; the rendered
            colour is max(SH(direction) + 0.5, 0) as in gsplat and the reference 3DGS code.
        mu_t: (N,) float, temporal centre in seconds (same clock as the render time t).
        sigma_t: (N,) float, temporal bandwidth in seconds, > 0.
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor
    mu_t: torch.Tensor
    sigma_t: torch.Tensor

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(int(self.sh.shape[1]))

    @property
    def device(self) -> torch.device:
        return self.means.device

    def validate(self) -> None:
        """Check shapes, dtypes and devices against `means`; raise ValueError naming the field."""
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise ValueError(f"Gaussians.means: expected (N, 3), got {tuple(self.means.shape)}")
        n = self.means.shape[0]
        expected = {
            "quats": (n, 4),
            "scales": (n, 3),
            "opacities": (n,),
            "mu_t": (n,),
            "sigma_t": (n,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Gaussians.{name}: expected {shape} for N={n}, got {got}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"Gaussians.sh: expected (N={n}, K, 3), got {tuple(self.sh.shape)}")
        sh_degree_of(int(self.sh.shape[1]))
        for name, value in self.items():
            if not value.is_floating_point():
                raise ValueError(f"Gaussians.{name}: expected a floating-point tensor, got {value.dtype}")
            if value.device != self.means.device:
                raise ValueError(f"Gaussians.{name}: on {value.device}, means are on {self.means.device}")

    def check_values(self) -> None:
        """Value checks that need a host sync (finite values, positive scales and bandwidths); for bad input."""
        for name, value in self.items():
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                first = _first_row(bad)
                raise ValueError(f"Gaussians.{name}: non-finite value at Gaussian {first}: {value[first].tolist()}")
        for name in ("scales", "sigma_t"):
            value = getattr(self, name)
            if bool((value <= 0).any()):
                first = _first_row(value <= 0)
                raise ValueError(f"Gaussians.{name}: must be > 0, Gaussian {first} has {value[first].tolist()}")
        if bool(((self.opacities < 0) | (self.opacities > 1)).any()):
            raise ValueError(
                f"Gaussians.opacities: must lie in [0, 1], got range "
                f"[{float(self.opacities.min())}, {float(self.opacities.max())}]"
            )

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, tensor) for every parameter, in the order of paper Eq. 3."""
        for name in FIELDS:
            yield name, getattr(self, name)

    def map(self, fn) -> Gaussians:
        """A new Gaussians with `fn` applied to every tensor (e.g. `lambda x: x.detach()`)."""
        return Gaussians(**{name: fn(value) for name, value in self.items()})

    def detach(self) -> Gaussians:
        return self.map(lambda x: x.detach())

    def to(self, *args, **kwargs) -> Gaussians:
        return self.map(lambda x: x.to(*args, **kwargs))

    def select(self, index: torch.Tensor) -> Gaussians:
        """The Gaussians picked by a (N,) bool mask or a (M,) int64 index."""
        return self.map(lambda x: x[index])

    @staticmethod
    def cat(parts: list[Gaussians]) -> Gaussians:
        """Concatenate along N (e.g. LiDAR anchors then voxel anchors); SH degrees must agree."""
        if not parts:
            raise ValueError("Gaussians.cat: need at least one part")
        degrees = {p.sh_degree for p in parts}
        if len(degrees) != 1:
            raise ValueError(f"Gaussians.cat: parts have different SH degrees {sorted(degrees)}")
        return Gaussians(**{name: torch.cat([getattr(p, name) for p in parts]) for name in FIELDS})

    @staticmethod
    def empty(sh_degree: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Gaussians:
        """Zero Gaussians (a frame with no anchors)."""
        k = sh_coefficients(sh_degree)

        def z(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, device=device, dtype=dtype)

        return Gaussians(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, k, 3), z(0), z(0))


def _first_row(mask: torch.Tensor) -> int:
    """Index of the first row (Gaussian) of a (N, ...) bool mask with any True entry."""
    rows = mask if mask.ndim == 1 else mask.flatten(1).any(dim=1)
    return int(rows.nonzero()[0, 0])
