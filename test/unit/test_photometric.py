import pytest
import torch
from pytorch_msssim import ssim

from tacocc_core.losses.photometric import photometric_loss, resize_target


def images(seed: int = 0, v: int = 2, h: int = 16, w: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(v, h, w, 3, generator=g, dtype=torch.float64), torch.rand(
        v, h, w, 3, generator=g, dtype=torch.float64
    )


def test_identical_images_cost_nothing():
    a, _ = images()
    assert photometric_loss(a, a.clone(), None, 0.2).item() == pytest.approx(0.0, abs=1e-12)


def test_unmasked_loss_is_the_weighted_sum_of_l1_and_dssim():
    a, b = images(1)
    l1 = (a - b).abs().mean()
    dssim = 1 - ssim(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), data_range=1.0, win_size=11)
    assert photometric_loss(a, b, None, 0.0).item() == pytest.approx(l1.item())
    assert photometric_loss(a, b, None, 1.0).item() == pytest.approx(dssim.item())
    assert photometric_loss(a, b, None, 0.2).item() == pytest.approx(0.8 * l1.item() + 0.2 * dssim.item())


def test_masked_pixels_neither_count_nor_receive_gradient():
    a, b = images(2)
    valid = torch.ones(2, 16, 24, dtype=torch.bool)
    valid[:, :6] = False  # sky rows
    rendered = a.clone().requires_grad_(True)
    loss = photometric_loss(rendered, b, valid, 0.2)
    loss.backward()
    assert rendered.grad[:, :6].abs().max() == 0
    assert rendered.grad[:, 6:].abs().sum() > 0
    # Changing the rendering under the mask changes nothing.
    other = a.clone()
    other[:, :6] = 0.0
    assert photometric_loss(other, b, valid, 0.2).item() == pytest.approx(loss.item())
    # L1 is the mean over valid pixels only.
    l1 = (a - b).abs()[:, 6:].mean()
    assert photometric_loss(a, b, valid, 0.0).item() == pytest.approx(l1.item())


def test_nothing_valid_gives_zero_connected_to_the_graph():
    a, b = images(3)
    rendered = a.clone().requires_grad_(True)
    loss = photometric_loss(rendered, b, torch.zeros(2, 16, 24, dtype=torch.bool), 0.2)
    assert loss.item() == 0.0
    loss.backward()
    assert rendered.grad.abs().sum() == 0


def test_bad_input_is_named():
    a, b = images()
    with pytest.raises(ValueError, match=r"target \(2, 16, 20, 3\) differs"):
        photometric_loss(a, b[:, :, :20], None)
    with pytest.raises(ValueError, match="valid must be a bool"):
        photometric_loss(a, b, torch.ones(2, 16, 24), 0.2)
    with pytest.raises(ValueError, match="dssim_lambda must be in"):
        photometric_loss(a, b, None, 1.5)
    small, small_b = images(v=1, h=8, w=24)
    with pytest.raises(ValueError, match="8x24 px are smaller than the 11x11"):
        photometric_loss(small, small_b, None, 0.2)


def test_resize_target_from_uint8_batch_layout():
    imgs = torch.zeros(2, 3, 8, 12, dtype=torch.uint8)
    imgs[:, 0] = 255
    imgs[:, 1, :, 6:] = 255
    valid = torch.ones(2, 8, 12, dtype=torch.bool)
    valid[:, :4] = False
    target, mask = resize_target(imgs, valid, 4, 6)
    assert target.shape == (2, 4, 6, 3) and target.dtype == torch.float32
    assert torch.allclose(target[..., 0], torch.ones(2, 4, 6))
    assert target[0, 0, 0, 1] == 0 and target[0, 0, 5, 1] == 1
    assert mask.shape == (2, 4, 6) and not mask[:, :2].any() and mask[:, 2:].all()
    with pytest.raises(ValueError, match=r"images must be \(V, 3, H, W\)"):
        resize_target(torch.zeros(2, 8, 12, 3), None, 4, 6)
