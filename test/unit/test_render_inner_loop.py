import math

import pytest
import torch

from tacocc_core.config import RendererConfig
from tacocc_core.render.free_params import FREE_FIELDS
from tacocc_core.render.inner_loop import InnerSchedule, has_converged, optimise_gaussians


def theta(n: int, requires_grad: bool = False, sh_k: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shapes = {
        "means": (n, 3),
        "quats": (n, 4),
        "log_scales": (n, 3),
        "logit_opacities": (n,),
        "sh": (n, sh_k, 3),
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
    out = optimise_gaussians(start, quadratic, InnerSchedule.uniform(0.1, 20))
    assert len(out.losses) == 20 and out.steps == 20 and out.stopped is None and not out.converged
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
    out = optimise_gaussians(start, quadratic, InnerSchedule.uniform(0.1, 0))
    assert out.losses == [] and all(torch.equal(out.theta[n], start[n]) for n in FREE_FIELDS)
    with pytest.raises(ValueError, match="need lrs > 0"):
        InnerSchedule.uniform(0.0, 1)
    with pytest.raises(ValueError, match=r"no learning rate for \['sh_rest'\]"):
        InnerSchedule({name: 0.1 for name in FREE_FIELDS}, 1)


def test_each_parameter_group_moves_at_its_own_rate():
    """Adam's first step moves every coordinate by its group's rate (the sign of a constant gradient)."""
    lrs = {
        "means": 0.3,
        "quats": 0.001,
        "log_scales": 0.005,
        "logit_opacities": 0.05,
        "sh": 0.0025,
        "sh_rest": 0.000125,
        "mu_t": 0.0002,
        "log_sigma_t": 0.004,
    }
    start = theta(5, sh_k=4)

    def linear(th):
        return sum(v.sum() for v in th.values())

    out = optimise_gaussians(start, linear, InnerSchedule(lrs, 1))
    for name in FREE_FIELDS:
        moved = start[name] - out.theta[name]
        if name == "sh":
            assert torch.allclose(moved[:, 0], torch.full_like(moved[:, 0], lrs["sh"]), rtol=0, atol=2e-6)
            assert torch.allclose(moved[:, 1:], torch.full_like(moved[:, 1:], lrs["sh_rest"]), rtol=0, atol=2e-6)
        else:
            assert torch.allclose(moved, torch.full_like(moved, lrs[name]), rtol=0, atol=2e-6), name


def test_the_3dgs_schedule_follows_the_config_and_the_scene_extent():
    r = RendererConfig()
    assert (r.inner_lr_schedule, r.inner_lr_means, r.inner_lr_opacities) == ("3dgs", 1.6e-4, 0.05)
    s = InnerSchedule.from_config(r, extent_m=40.0, duration_s=2.0)
    assert s.lrs["means"] == pytest.approx(1.6e-4 * 40.0)
    assert s.lrs["mu_t"] == pytest.approx(1.6e-4 * 2.0)
    assert s.lrs["sh_rest"] == pytest.approx(r.inner_lr_sh / 20)
    assert (s.lrs["quats"], s.lrs["log_scales"], s.lrs["logit_opacities"]) == (1e-3, 5e-3, 0.05)
    assert (s.max_steps, s.tolerance, s.window) == (r.inner_steps, r.inner_tolerance, r.inner_window)
    assert InnerSchedule.from_config(r, 40.0, 0.0).lrs["mu_t"] == pytest.approx(1.6e-4)  # one-second floor
    uniform = RendererConfig(inner_lr_schedule="uniform", inner_lr=0.2)
    assert set(InnerSchedule.from_config(uniform, 40.0, 2.0).lrs.values()) == {0.2}
    with pytest.raises(ValueError, match="scene extent must be > 0"):
        InnerSchedule.from_config(r, 0.0, 1.0)


def test_convergence_rule_compares_the_loss_over_the_window():
    assert not has_converged([1.0, 0.5], 0.01, 2)  # not enough history
    assert not has_converged([1.0, 0.9, 0.5], 0.01, 2)  # fell by 50 %
    assert has_converged([1.0, 0.9995, 0.999], 0.01, 2)  # fell by 0.1 %
    assert has_converged([1.0, 1.1, 1.2], 0.01, 2)  # rose
    assert not has_converged([1.0, 1.0, 1.0], 0.0, 2)  # tolerance 0: never


def test_the_fit_stops_when_converged_and_otherwise_at_the_cap():
    lrs = {name: 0.05 for name in (*FREE_FIELDS, "sh_rest")}
    converging = optimise_gaussians(theta(4), quadratic, InnerSchedule(lrs, 2000, tolerance=1e-3, window=10))
    assert converging.converged and converging.stopped is None
    assert 10 < converging.steps < 2000 and len(converging.losses) == converging.steps + 1
    assert quadratic(converging.theta).item() == pytest.approx(converging.losses[-1])  # the returned Theta's own
    assert converging.losses[-1] < 1e-2 * converging.losses[0]
    capped = optimise_gaussians(theta(4), quadratic, InnerSchedule(lrs, 15, tolerance=1e-3, window=10))
    assert not capped.converged and capped.steps == 15


def test_a_non_finite_step_ends_the_loop_with_the_last_finite_parameters():
    calls = []

    def blows_up(th):
        calls.append(1)
        loss = quadratic(th)
        return loss if len(calls) < 3 else loss * float("nan")

    out = optimise_gaussians(theta(4), blows_up, InnerSchedule.uniform(0.1, 10))
    assert len(out.losses) == 2 and "inner step 2" in out.stopped and not out.converged
    assert all(torch.isfinite(v).all() for v in out.theta.values())
    assert math.isfinite(quadratic(out.theta).item())

    def nan_gradient(th):
        return quadratic(th) + torch.sqrt(th["sh"] - th["sh"].detach()).sum()  # value 0, gradient inf

    out = optimise_gaussians(theta(4), nan_gradient, InnerSchedule.uniform(0.1, 5))
    assert out.losses == [] and out.stopped is not None
    assert all(torch.isfinite(v).all() for v in out.theta.values())
