import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.losses.photometric import photometric_loss
from tacocc_core.reference.ewa_cpu import rasterize_reference
from tacocc_core.render.gaussians import Gaussians, sh_coefficients
from tacocc_core.render.rasterize import gsplat_available, render_views, rigid_inverse, scale_intrinsics
from tacocc_core.render.sh import sh_to_rgb

YAWS_DEG = (0.0, -55.0, 55.0, 180.0, 110.0, -110.0)  # nuScenes-like ring: front, front-right, front-left, ...


def rig(width: int, height: int, views: int = 6, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """cam2lidar (V, 4, 4) of cameras 1.5 m up looking out horizontally, and cam2img (V, 3, 3) of ~70 deg fov."""
    # camera x right = -y_lidar, y down = -z_lidar, z forward = +x_lidar (before the yaw)
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    c2l = np.tile(np.eye(4), (views, 1, 1))
    for v in range(views):
        c2l[v, :3, :3] = Rotation.from_euler("z", YAWS_DEG[v], degrees=True).as_matrix() @ base
        c2l[v, :3, 3] = [0.5, 0.0, 1.5]
    f = 0.7 * width
    k = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return torch.tensor(c2l, dtype=dtype), torch.tensor(np.tile(k, (views, 1, 1)), dtype=dtype)


def random_gaussians(n: int, seed: int, degree: int = 1, dtype=torch.float64, device="cpu") -> Gaussians:
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    angle = r(n) * 2 * math.pi
    dist = 3.0 + r(n) * 15.0
    means = torch.stack([dist * torch.cos(angle), dist * torch.sin(angle), r(n) * 3.0], dim=1)
    out = Gaussians(
        means=means,
        quats=torch.randn(n, 4, generator=g, dtype=torch.float64),
        scales=0.1 + r(n, 3) * 0.8,
        opacities=0.1 + 0.85 * r(n),
        sh=(r(n, sh_coefficients(degree), 3) - 0.5) * 0.8,
        mu_t=r(n) * 0.5,
        sigma_t=0.2 + r(n) * 0.3,
    )
    return out.to(device=device, dtype=dtype)


def test_rigid_inverse_and_intrinsics_scaling():
    c2l, k = rig(32, 16)
    np.testing.assert_allclose((rigid_inverse(c2l) @ c2l).numpy(), np.tile(np.eye(4), (6, 1, 1)), atol=1e-12)
    half = scale_intrinsics(k, 0.5, 0.25)
    assert half[0, 0, 0] == k[0, 0, 0] * 0.5 and half[0, 1, 2] == k[0, 1, 2] * 0.25 and half[0, 2, 2] == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_backend_matches_reference_in_six_cameras(seed):
    width, height = 16, 10
    gs = random_gaussians(40, seed)
    c2l, k = rig(width, height)
    rgb, depth, alpha = render_views(gs, c2l, k, width, height, t=0.25, backend="torch")
    assert rgb.shape == (6, height, width, 3) and depth.shape == alpha.shape == (6, height, width)
    # Reference: the same temporal opacity and SH colours, camera z as a fourth channel.
    w = torch.exp(-0.5 * ((0.25 - gs.mu_t) / gs.sigma_t) ** 2)
    w2c = torch.linalg.inv(c2l)
    z = (w2c[:, None, :3, :3] @ gs.means[None, :, :, None])[..., 2, 0] + w2c[:, None, 2, 3]
    colors = torch.cat([sh_to_rgb(gs.sh, gs.means, c2l[:, :3, 3]), z[..., None]], dim=-1)
    ref, ref_alpha = rasterize_reference(gs.means, gs.quats, gs.scales, gs.opacities * w, colors, w2c, k, width, height)
    assert ref_alpha.max() > 0.5  # the scene is seen
    np.testing.assert_allclose(rgb.numpy(), ref[..., :3], atol=1e-9)
    np.testing.assert_allclose(alpha.numpy(), ref_alpha, atol=1e-9)
    expected_depth = np.where(ref_alpha > 0, ref[..., 3] / np.maximum(ref_alpha, 1e-10), 0.0)
    np.testing.assert_allclose(depth.numpy(), expected_depth, atol=1e-7)


def test_temporal_weighting_fades_off_time_gaussians():
    gs = random_gaussians(30, 3)
    c2l, k = rig(16, 10)
    gs.mu_t[:] = 0.0
    gs.sigma_t[:] = 0.1
    _, _, a_none = render_views(gs, c2l, k, 16, 10, t=None, backend="torch")
    _, _, a_own = render_views(gs, c2l, k, 16, 10, t=0.0, backend="torch")
    _, _, a_far = render_views(gs, c2l, k, 16, 10, t=1.0, backend="torch")  # 10 sigma away: all below 1/255
    assert torch.equal(a_none, a_own)
    assert a_far.abs().max() == 0


def test_no_gaussians_and_all_behind_give_black_images_finite_loss():
    c2l, k = rig(16, 12)
    target = torch.rand(6, 12, 16, 3, dtype=torch.float64)
    empty = Gaussians.empty(sh_degree=1, dtype=torch.float64)
    empty.opacities.requires_grad_(True)
    rgb, depth, alpha = render_views(empty, c2l, k, 16, 12, t=0.0)
    assert rgb.abs().sum() == 0 and depth.abs().sum() == 0 and alpha.abs().sum() == 0
    photometric_loss(rgb, target, None, 0.0).backward()  # back-propagates, with nothing to update

    gs = random_gaussians(10, 4)
    gs.means[:] = torch.tensor([0.5, 0.0, 1.5], dtype=torch.float64)  # at every camera centre: z = 0 < near
    for _, value in gs.items():
        value.requires_grad_(True)
    rgb, depth, alpha = render_views(gs, c2l, k, 16, 12, t=0.0)
    assert rgb.abs().sum() == 0 and alpha.abs().sum() == 0
    loss = photometric_loss(rgb, target, None, 0.2)
    assert torch.isfinite(loss)
    loss.backward()
    for name, value in gs.items():
        assert value.grad is not None and torch.isfinite(value.grad).all(), name


def test_gradients_reach_gaussian_parameters_and_fitting_reduces_the_loss():
    width, height = 24, 16
    c2l, k = rig(width, height, views=2)
    c2l, k = c2l.float(), k.float()
    truth = random_gaussians(60, 5, degree=0, dtype=torch.float32)
    with torch.no_grad():
        target, _, _ = render_views(truth, c2l, k, width, height)
    start = random_gaussians(60, 5, degree=0, dtype=torch.float32)
    start.sh.copy_(torch.zeros_like(start.sh))  # grey everywhere: colours must be learnt
    leaves = {name: value.clone().requires_grad_(True) for name, value in start.items()}
    opt = torch.optim.Adam([leaves["sh"], leaves["means"], leaves["opacities"]], lr=0.05)
    losses = []
    for _ in range(12):
        gs = Gaussians(**{**leaves, "opacities": leaves["opacities"].clamp(0.0, 1.0)})
        rgb, _, _ = render_views(gs, c2l, k, width, height)
        loss = photometric_loss(rgb, target, None, 0.2)
        opt.zero_grad()
        loss.backward()
        for name in ("sh", "means", "opacities", "scales", "quats"):
            assert leaves[name].grad is not None and torch.isfinite(leaves[name].grad).all(), name
            assert leaves[name].grad.abs().sum() > 0, name
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_bad_cameras_and_backend_are_named():
    gs = random_gaussians(3, 0)
    c2l, k = rig(16, 10)
    with pytest.raises(ValueError, match=r"cam2lidar must be \(V, 4, 4\)"):
        render_views(gs, c2l[:, :3], k, 16, 10)
    with pytest.raises(ValueError, match=r"cam2img must be \(6, 3, 3\)"):
        render_views(gs, c2l, k[:2], 16, 10)
    with pytest.raises(ValueError, match="image size must be positive"):
        render_views(gs, c2l, k, 0, 10)
    with pytest.raises(ValueError, match="backend must be"):
        render_views(gs, c2l, k, 16, 10, backend="opengl")
    if not gsplat_available():
        with pytest.raises(ValueError, match="backend 'gsplat' needs CUDA"):
            render_views(gs, c2l, k, 16, 10, backend="gsplat")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: gsplat runs on CUDA only")
@pytest.mark.parametrize("seed, degree", [(0, 0), (1, 1), (2, 3)])
def test_gsplat_and_torch_backends_agree(seed, degree):
    if not gsplat_available():
        pytest.skip("gsplat is not installed (pip install gsplat on the CUDA machine)")
    width, height = 64, 40
    gs = random_gaussians(300, seed, degree=degree, dtype=torch.float32, device="cuda")
    c2l, k = rig(width, height, dtype=torch.float32)
    c2l, k = c2l.cuda(), k.cuda()
    out_g = render_views(gs, c2l, k, width, height, t=0.2, backend="gsplat")
    out_t = render_views(gs, c2l, k, width, height, t=0.2, backend="torch")
    for name, a, b in zip(("rgb", "depth", "alpha"), out_g, out_t, strict=True):
        rel = ((a - b).norm() / b.norm().clamp_min(1e-12)).item()
        assert rel < 1e-3, f"{name}: relative error {rel:.2e}"
