import math

import pytest
import torch
import torch.nn.functional as F

from tacocc_core.config import load_preset
from tacocc_core.geometry import GridSpec
from tacocc_core.model.warp import scaled_grid
from tacocc_core.render.free_params import FREE_FIELDS, free_to_gaussians
from tacocc_core.render.gaussian_head import OPACITY_INIT, SCALE_MIN, SIGMA_T_BIAS, SIGMA_T_FLOOR, GaussianHead

GRID = GridSpec(lower=(-8.0, -8.0, -2.0), voxel_size=(2.0, 2.0, 2.0), shape=(8, 8, 2))


def head(sh_degree: int = 1) -> GaussianHead:
    torch.manual_seed(0)
    return GaussianHead(6, 8, GRID, sh_degree, lidar_offset_max=0.1, voxel_offset_max=0.9)


def anchors(n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    a = torch.rand(n, 3, generator=g) * torch.tensor([16.0, 16.0, 4.0]) + torch.tensor([-8.0, -8.0, -2.0])
    return a, torch.arange(n) % 2 == 0


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_shapes_and_bounds_hold_even_for_extreme_raw_outputs(sh_degree):
    net = head(sh_degree)
    with torch.no_grad():
        net.mlp[-1].weight.mul_(1e4)  # saturate every activation
    a, is_lidar = anchors()
    th = net(torch.randn(6, *GRID.shape), a, is_lidar, time_scale=0.5)
    assert set(th) == set(FREE_FIELDS)
    gs = free_to_gaussians(th)
    k = (sh_degree + 1) ** 2
    assert gs.means.shape == (30, 3) and gs.sh.shape == (30, k, 3) and gs.sigma_t.shape == (30,)
    off = (gs.means - a).abs()
    assert off[is_lidar].max() <= 0.1 + 1e-6 and off[~is_lidar].max() <= 0.9 + 1e-6
    assert off[~is_lidar].max() > 0.1  # voxel anchors do use their wider bound
    assert gs.scales.min() >= SCALE_MIN - 1e-6 and gs.scales.max() <= 2.0 + 1e-5  # coarse voxel edge
    assert torch.allclose(gs.quats.norm(dim=-1), torch.ones(30))
    assert gs.mu_t.abs().max() <= 0.5 + 1e-6
    assert gs.sigma_t.min() >= 0.5 * SIGMA_T_FLOOR - 1e-7
    gs.check_values()


def test_documented_start_values_at_zero_raw_output():
    net = head()
    with torch.no_grad():
        net.mlp[-1].weight.zero_()
    a, is_lidar = anchors(4)
    gs = free_to_gaussians(net(torch.randn(6, *GRID.shape), a, is_lidar, time_scale=0.4))
    assert torch.allclose(gs.means, a)
    assert torch.allclose(gs.quats, torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(4, 4))
    assert torch.allclose(gs.opacities, torch.full((4,), OPACITY_INIT))
    assert torch.allclose(gs.scales, torch.full((4, 3), 0.25 * 2.0))
    assert torch.allclose(gs.mu_t, torch.zeros(4))
    assert torch.allclose(gs.sigma_t, torch.full((4,), 0.4 * (SIGMA_T_FLOOR + F.softplus(torch.tensor(SIGMA_T_BIAS)))))
    assert torch.allclose(gs.sh, torch.zeros(4, 4, 3))


def test_parameters_depend_on_the_features_at_the_anchor_and_on_the_source():
    net = head()
    a, _ = anchors(2)
    a[1] = a[0]
    feats = torch.randn(6, *GRID.shape, requires_grad=True)
    th = net(feats, a, torch.tensor([True, False]), time_scale=0.5)
    assert not torch.allclose(th["sh"][0], th["sh"][1])  # same place, different source
    th["sh"].sum().backward()
    assert feats.grad.abs().sum() > 0
    # The voxels around the anchor matter most (GroupNorm couples the rest of the volume weakly).
    strongest = feats.grad.abs().sum(0).flatten().argmax()
    best = torch.tensor([strongest // 16, (strongest // 2) % 8, strongest % 2])
    idx = ((a[0] - torch.tensor(GRID.lower)) / 2.0 - 0.5).floor()
    assert (best - idx).abs().max() <= 2


def test_bad_input_and_presets():
    net = head()
    a, is_lidar = anchors(3)
    with pytest.raises(ValueError, match=r"features must be \(6, X, Y, Z\)"):
        net(torch.zeros(5, *GRID.shape), a, is_lidar, 0.5)
    with pytest.raises(ValueError, match="need \\(N, 3\\) anchors and \\(N,\\) is_lidar"):
        net(torch.zeros(6, *GRID.shape), a, is_lidar[:2], 0.5)
    with pytest.raises(ValueError, match="time_scale"):
        net(torch.zeros(6, *GRID.shape), a, is_lidar, 0.0)
    for name in ("tiny", "nuscenes_r50_256x704"):
        cfg = load_preset(name)
        grid = scaled_grid(cfg.grid.spec(), cfg.head.coarse_downsample)
        r = cfg.renderer
        built = GaussianHead(
            cfg.temporal.hidden_channels, r.head_channels, grid, r.sh_degree, r.lidar_offset_max, r.voxel_offset_max
        )
        assert built.raw_dim == 11 + 3 * (r.sh_degree + 1) ** 2 + 2
        assert built.scale_max == pytest.approx(cfg.grid.voxel_size * cfg.head.coarse_downsample)
        assert sum(p.numel() for p in built.parameters()) < 100_000  # a light net
        assert not math.isnan(built.mlp[-1].weight.std().item())
