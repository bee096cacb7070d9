import pytest
import torch

from tacocc_core.render.gaussians import Gaussians, sh_coefficients, sh_degree_of


def make(n: int = 4, degree: int = 1) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    return Gaussians(
        means=torch.randn(n, 3, generator=g),
        quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) + 0.1,
        opacities=torch.rand(n, generator=g),
        sh=torch.randn(n, sh_coefficients(degree), 3, generator=g),
        mu_t=torch.zeros(n),
        sigma_t=torch.ones(n),
    )


def test_degree_and_count():
    assert [sh_coefficients(d) for d in range(4)] == [1, 4, 9, 16]
    assert [sh_degree_of(k) for k in (1, 4, 9, 16)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="5 SH coefficients"):
        sh_degree_of(5)
    g = make(5, degree=2)
    assert g.num == 5 and g.sh_degree == 2


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("scales", torch.ones(4, 2), r"Gaussians.scales: expected \(4, 3\)"),
        ("opacities", torch.ones(3), r"Gaussians.opacities: expected \(4,\)"),
        ("sh", torch.ones(4, 5, 3), "5 SH coefficients"),
        ("mu_t", torch.zeros(4, dtype=torch.long), "Gaussians.mu_t: expected a floating-point"),
    ],
)
def test_bad_shapes_name_the_field(field, value, message):
    fields = dict(make().items())
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        Gaussians(**fields)


def test_value_checks_name_field_and_gaussian():
    g = make()
    g.check_values()
    g.scales[2, 1] = 0.0
    with pytest.raises(ValueError, match=r"Gaussians.scales: must be > 0, Gaussian 2"):
        g.check_values()
    g = make()
    g.means[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"Gaussians.means: non-finite value at Gaussian 1"):
        g.check_values()
    g = make()
    g.opacities[0] = 1.5
    with pytest.raises(ValueError, match=r"opacities: must lie in \[0, 1\]"):
        g.check_values()


def test_select_cat_detach_empty():
    g = make(6)
    part = g.select(torch.tensor([True, False, True, False, False, True]))
    assert part.num == 3 and torch.equal(part.means, g.means[[0, 2, 5]])
    both = Gaussians.cat([part, g.select(torch.tensor([1]))])
    assert both.num == 4 and torch.equal(both.sh[3], g.sh[1])
    with pytest.raises(ValueError, match="different SH degrees"):
        Gaussians.cat([make(2, 0), make(2, 1)])
    leaf = make(2)
    leaf.means.requires_grad_(True)
    assert not leaf.detach().means.requires_grad
    empty = Gaussians.empty(sh_degree=3)
    assert empty.num == 0 and empty.sh.shape == (0, 16, 3)
    assert [name for name, _ in g.items()] == ["means", "quats", "scales", "opacities", "sh", "mu_t", "sigma_t"]
