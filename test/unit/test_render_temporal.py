import math

import pytest
import torch

from tacocc_core.config import load_preset
from tacocc_core.render.temporal import (
    VelocityGate,
    moving_gate,
    temporal_opacities,
    temporal_weight,
    velocity_threshold,
    widen_bandwidth,
)


def test_weight_is_one_at_own_time_and_gaussian_elsewhere():
    mu = torch.tensor([0.0, 0.5, 1.0])
    sigma = torch.tensor([0.1, 0.2, 0.4])
    assert torch.allclose(temporal_weight(mu, mu, sigma), torch.ones(3))
    w = temporal_weight(0.5, mu, sigma)
    expected = [math.exp(-0.5 * (0.5 / 0.1) ** 2), 1.0, math.exp(-0.5 * (0.5 / 0.4) ** 2)]
    assert w.tolist() == pytest.approx(expected, rel=1e-6)
    # One standard deviation away: exp(-1/2), symmetric in time.
    assert temporal_weight(0.3, mu[1:2], sigma[1:2]).item() == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert temporal_weight(0.7, mu[1:2], sigma[1:2]).item() == pytest.approx(math.exp(-0.5), rel=1e-6)


def test_temporal_opacities_scale_and_differentiate():
    o = torch.tensor([0.8, 0.4], requires_grad=True)
    mu = torch.tensor([0.0, 1.0], requires_grad=True)
    sigma = torch.tensor([0.5, 0.5], requires_grad=True)
    out = temporal_opacities(o, 1.0, mu, sigma)
    assert out.tolist() == pytest.approx([0.8 * math.exp(-2.0), 0.4], rel=1e-6)
    out.sum().backward()
    assert mu.grad[0] > 0  # moving mu_t towards t raises the weight
    assert sigma.grad[0] > 0  # widening raises the weight of an off-time Gaussian
    assert mu.grad[1].abs() < 1e-7  # at its own time the weight is stationary


def test_threshold_is_beta_over_dt_times_mean_displacement():
    disp = torch.tensor([0.0, 0.1, 0.2, 1.3])  # metres between adjacent frames, mean 0.4
    tau = velocity_threshold(disp, torch.tensor(1.5), dt=0.5)
    assert tau.item() == pytest.approx(1.5 / 0.5 * 0.4)
    assert velocity_threshold(torch.zeros(0), torch.tensor(2.0), 0.5).item() == 0.0
    with pytest.raises(ValueError, match="dt must be > 0"):
        velocity_threshold(disp, torch.tensor(1.0), 0.0)


def test_gate_widens_only_gaussians_faster_than_tau():
    sigma = torch.tensor([0.2, 0.2, 0.2, 0.2])
    speed = torch.tensor([0.0, 0.99, 1.01, 5.0])
    out = widen_bandwidth(sigma, speed, torch.tensor(1.0), widen=3.0, softness=0.1)
    assert out.tolist() == pytest.approx([0.2, 0.2, 0.6, 0.6])
    # At exactly tau nothing is widened ("exceeds" is strict); a static scene (tau = 0) widens nothing.
    assert moving_gate(torch.tensor([1.0]), torch.tensor(1.0), 0.1).item() == 0.0
    assert moving_gate(torch.zeros(3), torch.tensor(0.0), 0.1).tolist() == [0.0, 0.0, 0.0]


def test_velocity_gate_constructed_scene_and_beta_gradient():
    # A static scene of 8 voxels and one car moving 1.0 m per 0.5 s frame: E|d| = 1/9 m, tau = beta * 2/9 m/s.
    scene = torch.tensor([0.0] * 8 + [1.0])
    gate = VelocityGate(beta_init=2.0, widen=2.0, softness=0.5)
    sigma = torch.tensor([0.3, 0.3, 0.3])
    disp = torch.tensor([0.0, 0.05, 1.0])  # static, jitter (0.1 m/s < tau = 0.444 m/s), the car (2 m/s)
    out = gate(sigma, disp, scene, dt=0.5)
    assert out.tolist() == pytest.approx([0.3, 0.3, 0.6])
    out.sum().backward()
    # A larger beta raises tau and would un-gate the car: d(sum sigma)/d(log beta) < 0.
    assert gate.log_beta.grad is not None and gate.log_beta.grad < 0
    # With beta large enough the car is below tau.
    big = VelocityGate(beta_init=10.0)
    assert big(sigma, disp, scene, dt=0.5).tolist() == pytest.approx([0.3, 0.3, 0.3])


def test_gate_from_config_and_bad_arguments():
    renderer = load_preset("tiny").renderer
    gate = VelocityGate.from_config(renderer)
    assert gate.beta.item() == pytest.approx(renderer.velocity_beta_init)
    assert gate.widen == renderer.velocity_widen
    with pytest.raises(ValueError, match="widen >= 1"):
        VelocityGate(widen=0.5)
