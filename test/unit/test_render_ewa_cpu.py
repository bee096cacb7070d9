import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.reference.ewa_cpu import rasterize_reference
from tacocc_core.render.ewa_cpu import quat_scale_to_covar, quat_to_rotmat, rasterize_ewa

W, H = 20, 14


def cameras(views: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """world2cam (V, 4, 4) looking roughly along +z of the world, small random rotations; cam2img (V, 3, 3)."""
    w2c = np.tile(np.eye(4), (views, 1, 1))
    for v in range(views):
        w2c[v, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.15, 3)).as_matrix()
        w2c[v, :3, 3] = rng.normal(0, 0.2, 3)
    k = np.array([[16.0, 0.0, W / 2 - 0.3], [0.0, 15.0, H / 2 + 0.2], [0.0, 0.0, 1.0]])
    return torch.from_numpy(w2c), torch.from_numpy(np.tile(k, (views, 1, 1)))


def scene(n: int, seed: int, views: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    means = np.column_stack([rng.uniform(-2.5, 2.5, n), rng.uniform(-1.8, 1.8, n), rng.uniform(1.5, 7.0, n)])
    w2c, k = cameras(views, rng)
    return {
        "means": torch.from_numpy(means),
        "quats": torch.from_numpy(rng.normal(size=(n, 4))),
        "scales": torch.from_numpy(rng.uniform(0.05, 0.6, (n, 3))),
        "opacities": torch.from_numpy(rng.uniform(0.05, 1.0, n)),
        "colors": torch.from_numpy(rng.uniform(0, 1, (views, n, 4))),
        "world2cam": w2c,
        "cam2img": k,
        "width": W,
        "height": H,
    }


def compare(s: dict, dtype: torch.dtype, tol: float, **kw) -> None:
    args = {k: v.to(dtype) if torch.is_tensor(v) else v for k, v in s.items()}
    render, alpha, _ = rasterize_ewa(**args, **kw)
    ref_render, ref_alpha = rasterize_reference(**{k: v.numpy() if torch.is_tensor(v) else v for k, v in s.items()})
    assert torch.isfinite(render).all() and torch.isfinite(alpha).all()
    np.testing.assert_allclose(render.double().numpy(), ref_render, atol=tol, rtol=0)
    np.testing.assert_allclose(alpha.double().numpy(), ref_alpha, atol=tol, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [1, 7, 25])
def test_matches_per_pixel_reference_float64(seed, n):
    compare(scene(n, seed), torch.float64, 1e-9)


@pytest.mark.parametrize("tile_size, max_elements", [(16, 1 << 22), (4, 1), (8, 300)])
def test_tiles_and_chunks_do_not_change_the_image(tile_size, max_elements):
    # max_elements=1 puts every tile in a chunk of its own; tile 4 splits Gaussians over many tiles.
    compare(scene(25, 11), torch.float64, 1e-9, tile_size=tile_size, max_elements=max_elements)


def test_float32_close_to_reference():
    compare(scene(25, 5), torch.float32, 2e-5)


def test_dense_scene_saturates_and_stops():
    s = scene(60, 9, views=1)
    s["opacities"] = torch.full_like(s["opacities"], 0.98)
    s["scales"] = torch.full_like(s["scales"], 0.8)
    compare(s, torch.float64, 1e-9)
    _, alpha, _ = rasterize_ewa(**s)
    assert alpha.max() > 1 - 2e-4  # transmittance reached the 1e-4 stop somewhere


def test_empty_scene_renders_black():
    s = scene(0, 0)
    render, alpha, proj = rasterize_ewa(**s)
    assert render.shape == (2, H, W, 4) and alpha.shape == (2, H, W)
    assert render.abs().sum() == 0 and alpha.abs().sum() == 0
    assert proj.visible.shape == (2, 0)


def test_all_behind_camera_renders_black_with_finite_gradients():
    s = scene(10, 3)
    s["means"][:, 2] = -s["means"][:, 2]  # behind every camera
    s["means"].requires_grad_(True)
    s["scales"].requires_grad_(True)
    render, alpha, proj = rasterize_ewa(**s)
    compare({k: v.detach() if torch.is_tensor(v) else v for k, v in s.items()}, torch.float64, 1e-12)
    assert not proj.visible.any()
    assert render.abs().sum() == 0 and alpha.abs().sum() == 0
    (render.sum() + alpha.sum()).backward()
    assert torch.isfinite(s["means"].grad).all() and torch.isfinite(s["scales"].grad).all()


def test_gaussian_on_the_near_plane_is_culled():
    s = scene(1, 0, views=1)
    s["world2cam"][0] = torch.eye(4, dtype=torch.float64)
    s["means"][0] = torch.tensor([0.0, 0.0, 0.005])
    render, alpha, proj = rasterize_ewa(**s)
    assert not proj.visible.any() and alpha.sum() == 0


def test_gradients_reach_every_parameter():
    s = scene(12, 4)
    leaves = ["means", "quats", "scales", "opacities", "colors"]
    for name in leaves:
        s[name] = s[name].float().requires_grad_(True)
    s["world2cam"], s["cam2img"] = s["world2cam"].float(), s["cam2img"].float()
    render, alpha, _ = rasterize_ewa(**s)
    target = torch.rand_like(render)
    ((render - target) ** 2).sum().add(alpha.sum()).backward()
    for name in leaves:
        grad = s[name].grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


def test_gradient_matches_finite_differences():
    s = scene(5, 8, views=1)
    s["means"].requires_grad_(True)
    s["opacities"].requires_grad_(True)
    weights = torch.from_numpy(np.random.default_rng(0).uniform(size=(1, H, W, 4)))

    def loss() -> torch.Tensor:
        render, _, _ = rasterize_ewa(**s)
        return (render * weights).sum()

    loss().backward()
    for name, index in (("means", (2, 0)), ("means", (3, 2)), ("opacities", (1,))):
        with torch.no_grad():
            value = s[name][index].item()
            s[name][index] = value + 1e-6
            up = loss().item()
            s[name][index] = value - 1e-6
            down = loss().item()
            s[name][index] = value
        numeric = (up - down) / 2e-6
        assert s[name].grad[index].item() == pytest.approx(numeric, rel=1e-4, abs=1e-6), (name, index)


def test_quaternion_rotation_matches_scipy_and_ignores_length():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(8, 4))
    ours = quat_to_rotmat(torch.from_numpy(q * 3.0)).numpy()
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    scales = rng.uniform(0.1, 1, (8, 3))
    cov = quat_scale_to_covar(torch.from_numpy(q), torch.from_numpy(scales)).numpy()
    np.testing.assert_allclose(cov, ref @ (scales[:, :, None] ** 2 * np.transpose(ref, (0, 2, 1))), atol=1e-12)


def test_single_gaussian_peak_at_its_projection():
    s = scene(1, 0, views=1)
    s["world2cam"][0] = torch.eye(4, dtype=torch.float64)
    s["means"][0] = torch.tensor([0.0, 0.0, 4.0])
    s["opacities"][0] = 0.9
    s["colors"][:] = 1.0
    _, alpha, proj = rasterize_ewa(**s)
    u, v = proj.means2d[0, 0].tolist()
    row, col = divmod(int(alpha[0].argmax()), W)
    assert math.isclose(col + 0.5, u, abs_tol=1.0) and math.isclose(row + 0.5, v, abs_tol=1.0)
    assert alpha.max() <= 0.9
