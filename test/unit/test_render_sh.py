import math

import numpy as np
import pytest
import torch

from tacocc_core.render.sh import C0, C1, sh_basis, sh_to_rgb


def sphere_quadrature(n_theta: int = 64, n_phi: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre in cos(theta) x uniform in phi: exact for polynomials of the degrees used here."""
    x, w = np.polynomial.legendre.leggauss(n_theta)
    phi = np.arange(n_phi) * 2 * math.pi / n_phi
    ct, ph = np.meshgrid(x, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    dirs = np.stack([st * np.cos(ph), st * np.sin(ph), ct], axis=-1).reshape(-1, 3)
    weights = np.repeat(w, n_phi) * (2 * math.pi / n_phi)
    return torch.from_numpy(dirs), torch.from_numpy(weights)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_basis_is_orthonormal_on_the_sphere(degree):
    dirs, weights = sphere_quadrature()
    y = sh_basis(degree, dirs)  # (M, K)
    gram = (y * weights[:, None]).T @ y
    np.testing.assert_allclose(gram.numpy(), np.eye((degree + 1) ** 2), atol=1e-10)


def test_degree_one_signs_follow_3dgs_convention():
    d = torch.tensor([[0.6, 0.0, 0.8], [0.0, 1.0, 0.0]], dtype=torch.float64)
    y = sh_basis(1, d)
    assert y[0].tolist() == pytest.approx([C0, -0.0, C1 * 0.8, -C1 * 0.6])
    assert y[1].tolist() == pytest.approx([C0, -C1, 0.0, -0.0])


def test_sh_to_rgb_direction_offset_and_clamp():
    means = torch.tensor([[0.0, 0.0, 5.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    cams = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 5.0]], dtype=torch.float64)
    sh = torch.zeros(2, 4, 3, dtype=torch.float64)
    sh[:, 0] = torch.tensor([1.0, 0.0, -10.0])  # DC: 0.5 + C0 * c, the last channel clamps to 0
    sh[:, 2, 1] = 1.0  # the z basis on green
    rgb = sh_to_rgb(sh, means, cams)
    assert rgb.shape == (2, 2, 3)
    # camera 0 -> Gaussian 0 looks along +z: green = 0.5 + C1; camera 1 -> Gaussian 1 along -z: 0.5 - C1.
    assert rgb[0, 0].tolist() == pytest.approx([0.5 + C0, 0.5 + C1, 0.0])
    assert rgb[1, 1].tolist() == pytest.approx([0.5 + C0, 0.5 - C1, 0.0])
    with pytest.raises(ValueError, match="5 coefficients"):
        sh_to_rgb(torch.zeros(2, 5, 3), means, cams)
