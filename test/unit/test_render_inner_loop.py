import math

import pytest
import torch

from tacocc_core.render.free_params import FREE_FIELDS
from tacocc_core.render.inner_loop import optimise_gaussians


def theta(n: int, requires_grad: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shapes = {
        "means": (n, 3),
        "quats": (n, 4),
        "log_scales": (n, 3),
        "logit_opacities": (n,),
        "sh": (n, 1, 3),
        "mu_t": (n,),
        "log_sigma_t": (n,),
    }
    return {name: torch.randn(*shapes[name], generator=g).requires_grad_(requires_grad) for name in FREE_FIELDS}


def quadratic(th):
    """A loss with its minimum at means = 1, everything else free."""
    return ((th["means"] - 1.0) ** 2).sum() + 0.0 * sum(v.sum() for v in th.values())


def test_steps_reduce_the_loss_and_leave_the_start_untouched():
    start = theta(6, requires_grad=True)
    before = {name: value.detach().clone() for name, value in start.items()}
    out = optimise_gaussians(start, quadratic, steps=20, lr=0.1)
    assert len(out.losses) == 20 and out.stopped is None
    assert out.losses[-1] < 0.5 * out.losses[0]
    assert all(out.losses[i + 1] < out.losses[i] for i in range(19))
    assert quadratic(out.theta).item() < out.losses[-1]  # the last update helped too
    for name in FREE_FIELDS:
        assert torch.equal(start[name].detach(), before[name])
        assert start[name].grad is None  # nothing flowed back into the network's Theta^0
        assert not out.theta[name].requires_grad
    assert torch.equal(out.theta["sh"], before["sh"])  # no gradient, no Adam move


def test_zero_steps_return_the_start():
    start = theta(3)
    out = optimise_gaussians(start, quadratic, steps=0, lr=0.1)
    assert out.losses == [] and all(torch.equal(out.theta[n], start[n]) for n in FREE_FIELDS)
    with pytest.raises(ValueError, match="lr > 0"):
        optimise_gaussians(start, quadratic, steps=1, lr=0.0)


def test_a_non_finite_step_ends_the_loop_with_the_last_finite_parameters():
    calls = []

    def blows_up(th):
        calls.append(1)
        loss = quadratic(th)
        return loss if len(calls) < 3 else loss * float("nan")

    out = optimise_gaussians(theta(4), blows_up, steps=10, lr=0.1)
    assert len(out.losses) == 2 and "inner step 2" in out.stopped
    assert all(torch.isfinite(v).all() for v in out.theta.values())
    assert math.isfinite(quadratic(out.theta).item())

    def nan_gradient(th):
        return quadratic(th) + torch.sqrt(th["sh"] - th["sh"].detach()).sum()  # value 0, gradient inf

    out = optimise_gaussians(theta(4), nan_gradient, steps=5, lr=0.1)
    assert out.losses == [] and out.stopped is not None
    assert all(torch.isfinite(v).all() for v in out.theta.values())
