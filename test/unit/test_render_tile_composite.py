import pytest
import torch

from tacocc_core.reference.tile_composite import tile_composite_reference
from tacocc_core.render.tile_composite import tile_composite


def tiles(seed: int, t: int = 5, k: int = 40, side: int = 8, channels: int = 4, dtype=torch.float64) -> list:
    """t tiles of side x side pixels with K Gaussians each (some slots padding), dense enough to saturate."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(t, k, 2, generator=g, dtype=dtype) * (side + 4) - 2
    a = torch.rand(t, k, generator=g, dtype=dtype) * 0.6 + 0.05
    c = torch.rand(t, k, generator=g, dtype=dtype) * 0.6 + 0.05
    b = (torch.rand(t, k, generator=g, dtype=dtype) - 0.5) * torch.sqrt(a * c)  # positive definite
    conic = torch.stack([a, b, c], dim=-1)
    opacity = torch.rand(t, k, generator=g, dtype=dtype)
    opacity[0, :6] = 1.0  # clamped at 0.999 near their centres, and the pixel saturates
    feats = torch.rand(t, k, channels, generator=g, dtype=dtype)
    counts = torch.tensor([k, k // 2, 3, k - 1, 0][:t])
    valid = torch.arange(k)[None, :] < counts[:, None]
    r = torch.arange(side, dtype=dtype) + 0.5
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    centres = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1).expand(t, -1, -1).contiguous()
    return [xy, conic, opacity, feats, centres, valid]


def run(fn, inputs, grad_out):
    leaves = [x.clone().requires_grad_(True) for x in inputs[:4]]
    out = fn(*leaves, *inputs[4:])
    out.backward(grad_out)
    return out.detach(), [x.grad for x in leaves]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_and_every_gradient_equal_the_autograd_twin(seed):
    inputs = tiles(seed)
    grad_out = torch.randn(5, 64, 4, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64)
    out, grads = run(tile_composite, inputs, grad_out)
    ref_out, ref_grads = run(tile_composite_reference, inputs, grad_out)
    assert torch.allclose(out, ref_out, rtol=0, atol=1e-12)
    for name, got, want in zip(("xy", "conic", "opacity", "feats"), grads, ref_grads, strict=True):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-10), name
        assert got.abs().max() > 0, name
    # The scene exercises what the closed form must get right: saturated pixels and clamped alphas.
    accumulated = run(
        tile_composite_reference,
        [*inputs[:3], torch.ones(5, 40, 1, dtype=torch.float64), *inputs[4:]],
        torch.zeros(5, 64, 1, dtype=torch.float64),
    )[0]
    assert accumulated.max() > 0.999 and accumulated[4].abs().max() == 0  # tile 4 has no Gaussian


def test_float32_close_to_the_float64_twin():
    inputs = tiles(3)
    grad_out = torch.randn(5, 64, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ref_out, ref_grads = run(tile_composite_reference, inputs, grad_out)
    as32 = [x.float() if x.is_floating_point() else x for x in inputs]
    out, grads = run(tile_composite, as32, grad_out.float())
    assert torch.allclose(out.double(), ref_out, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        assert torch.allclose(got.double(), want, rtol=1e-3, atol=1e-3 * want.abs().max().item())


def test_gradient_matches_finite_differences():
    inputs = tiles(5, t=2, k=12, side=4, channels=2)
    inputs[2] = inputs[2].clamp(0.05, 0.9)  # away from the alpha clamp, where the derivative jumps
    leaves = tuple(x.clone().requires_grad_(True) for x in inputs[:4])
    assert torch.autograd.gradcheck(lambda *x: tile_composite(*x, *inputs[4:]), leaves, atol=1e-6)


def test_under_autocast_the_gradients_keep_the_inputs_precision():
    inputs = [x.float() if x.is_floating_point() else x for x in tiles(6)]
    grad_out = torch.randn(5, 64, 4, generator=torch.Generator().manual_seed(7))
    ref_out, ref_grads = run(tile_composite_reference, inputs, grad_out)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grads = run(tile_composite, inputs, grad_out)
    assert out.dtype == torch.float32 and torch.allclose(out, ref_out, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        assert got.dtype == torch.float32
        assert torch.allclose(got, want, rtol=1e-3, atol=1e-3 * want.abs().max().item())
