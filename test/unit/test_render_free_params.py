import math

import pytest
import torch

from tacocc_core.render.free_params import (
    FREE_FIELDS,
    check_free,
    detached_copy,
    free_to_gaussians,
    parameter_consistency,
)


def theta(n: int, k: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "means": (n, 3),
        "quats": (n, 4),
        "log_scales": (n, 3),
        "logit_opacities": (n,),
        "sh": (n, k, 3),
        "mu_t": (n,),
        "log_sigma_t": (n,),
    }
    return {name: torch.randn(*shapes[name], generator=g, dtype=torch.float64) for name in FREE_FIELDS}


def test_activations():
    th = theta(4, k=4)
    gs = free_to_gaussians(th)
    assert torch.equal(gs.means, th["means"]) and torch.equal(gs.sh, th["sh"])
    assert torch.allclose(gs.scales, th["log_scales"].exp())
    assert torch.allclose(gs.opacities, 1.0 / (1.0 + torch.exp(-th["logit_opacities"])))
    assert torch.allclose(gs.sigma_t, th["log_sigma_t"].exp())
    assert gs.sh_degree == 1
    gs.check_values()  # every real Theta is a valid Gaussian


def test_parameter_consistency_is_the_papers_sum_over_gaussians_or_its_mean():
    a = theta(3)
    b = {name: value.clone() for name, value in a.items()}
    assert parameter_consistency(a, b).item() == 0.0
    b["means"][0, 1] += 0.3
    b["logit_opacities"][2] -= 0.6
    b["sh"][1, 0, 2] += 0.9
    assert parameter_consistency(a, b).item() == pytest.approx(0.3 + 0.6 + 0.9)
    assert parameter_consistency(a, b, "sum").item() == pytest.approx(0.3 + 0.6 + 0.9)
    assert parameter_consistency(a, b, "mean").item() == pytest.approx((0.3 + 0.6 + 0.9) / 3)
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        parameter_consistency(a, b, "max")
    # Quaternion length does not count; a rotation change does.
    c = {name: value.clone() for name, value in a.items()}
    c["quats"] = a["quats"] * 2.5
    assert parameter_consistency(a, c).item() == pytest.approx(0.0, abs=1e-12)
    c["quats"][0] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert parameter_consistency(a, c).item() > 0


def test_parameter_consistency_gradient_reaches_only_the_initial_side():
    final = theta(5, seed=1)
    initial = {name: value.clone().requires_grad_(True) for name, value in theta(5, seed=2).items()}
    parameter_consistency(final, initial, "mean").backward()
    # d/dx |f - x| = -sign(f - x), divided by N for the mean, N times that for the sum
    expected = -torch.sign(final["means"] - initial["means"].detach()) / 5
    assert torch.allclose(initial["means"].grad, expected)
    initial["means"].grad = None
    parameter_consistency(final, initial, "sum").backward()
    assert torch.allclose(initial["means"].grad, 5 * expected)
    copy = detached_copy(initial)
    assert all(copy[n].is_leaf and copy[n].requires_grad and copy[n].grad_fn is None for n in FREE_FIELDS)
    copy["means"].data += 1.0
    assert not torch.equal(copy["means"], initial["means"])  # a copy, not a view


def test_empty_and_bad_parameter_sets():
    empty = theta(0)
    loss = parameter_consistency(empty, empty)
    assert loss.item() == 0.0 and math.isfinite(loss.item())
    with pytest.raises(ValueError, match=r"missing keys \['sh'\]"):
        check_free({k: v for k, v in theta(2).items() if k != "sh"})
    bad = theta(2)
    bad["mu_t"] = torch.zeros(3)
    with pytest.raises(ValueError, match="mu_t has 3 rows, means have 2"):
        check_free(bad)
    with pytest.raises(ValueError, match="2 optimised Gaussians, 3 initial"):
        parameter_consistency(theta(2), theta(3))
