import copy
import dataclasses

import pytest
import torch

from tacocc_core.config import load_preset
from tacocc_core.model.encoder import EncoderOutput, TacoccEncoder
from tacocc_core.synthetic_batch import synthetic_step_batch

TINY = load_preset("tiny")


@pytest.fixture(scope="module")
def encoder() -> TacoccEncoder:
    torch.manual_seed(0)
    return TacoccEncoder(TINY).eval()


def batch(config=TINY, b: int = 1, points: int = 2000, seed: int = 0) -> dict:
    return synthetic_step_batch(config, b, points, seed)


def check(out: EncoderOutput, config=TINY, b: int = 1) -> None:
    shape = tuple(n // config.head.coarse_downsample for n in config.grid.spec().shape)
    assert out.fused.shape == (b, config.fuser.channels, *shape)
    assert out.image_volume.shape == (b, config.view_transform.channels, *shape)
    assert out.lidar_volume.shape == (b, config.lidar.encoder_channels[-1], *shape)
    assert out.image_occupied.shape == out.lidar_occupied.shape == (b, *shape)
    v, (h, w) = len(config.cameras.names), config.cameras.image_size
    assert out.sky_masks.shape == (b, v, h, w) and out.sky_masks.dtype == torch.bool
    stride = config.image_backbone.feature_stride
    assert out.depth_logits.shape[:2] == (b, v) and out.depth_logits.shape[-2:] == (h // stride, w // stride)
    for t in (out.fused, out.image_volume, out.lidar_volume, out.depth_logits):
        assert torch.isfinite(t).all()


def test_tiny_forward(encoder):
    with torch.no_grad():
        out = encoder(batch(b=2), step=None)
    check(out, b=2)
    assert out.image_occupied.any() and out.lidar_occupied.any()
    assert out.sky_masks[:, :, :10].float().mean() > 0.9  # the synthetic sky band
    assert out.depth_target is None
    counts = out.k_stats.counts
    assert counts.shape == (2, 2, TINY.fuser.num_scales, 3)
    assert counts[:, 0, 0].sum() == out.image_occupied.sum() and counts[:, 1, 0].sum() == out.lidar_occupied.sum()


def bad_batches() -> dict[str, dict]:
    cases = {}
    empty = batch()
    empty["points"], empty["points_batch"] = torch.zeros(0, 5), torch.zeros(0, dtype=torch.int64)
    cases["empty cloud"] = empty
    nan = batch()
    nan["points"][::2, 0] = float("nan")
    nan["points"][1::4, 2] = float("inf")
    cases["nan and inf points"] = nan
    outside = batch()
    outside["points"][:, :3] = 1000.0
    cases["points all outside"] = outside
    dark = batch()
    dark["images"][0, 0] = 0
    cases["an all-zero camera"] = dark
    missing = batch()
    missing["images"][:] = 0
    missing["camera_valid"][:] = False
    cases["no valid camera"] = missing
    return cases


@pytest.mark.parametrize("case", list(bad_batches()))
def test_bad_input_gives_valid_volumes(encoder, case):
    step = bad_batches()[case]
    with torch.no_grad():
        out = encoder(step)
    check(out)
    if case in ("empty cloud", "points all outside"):
        assert not out.lidar_occupied.any() and (out.lidar_volume == 0).all()
    if case == "no valid camera":
        assert not out.image_occupied.any() and (out.image_volume == 0).all()
    if case == "nan and inf points":
        assert torch.isfinite(out.points).all()


def test_training_step_with_depth_supervision():
    config = dataclasses.replace(TINY, view_transform=dataclasses.replace(TINY.view_transform, depth_loss_weight=1.0))
    torch.manual_seed(0)
    model = TacoccEncoder(config).train()
    out = model(batch(config), step=10)
    check(out, config)
    assert out.depth_target.shape == (1, 6, 8, 22) and (out.depth_target >= 0).any()
    loss = out.fused.square().mean() + out.depth_loss()
    loss.backward()
    grads = {
        "backbone": model.backbone.trunk.conv1.weight.grad,
        "lidar": next(p for p in model.lidar.parameters() if p.dim() == 5).grad,
        "selector": model.fuser.selectors[0].mlp[0].weight.grad,
    }
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name


def test_precomputed_sky_masks_are_used(encoder):
    step = batch()
    step["sky_masks"] = torch.zeros(1, 6, 64, 176, dtype=torch.bool)
    step["sky_masks"][:, :, -5:] = True
    with torch.no_grad():
        out = encoder(step)
    assert torch.equal(out.sky_masks, step["sky_masks"])


def test_bad_batches_are_named(encoder):
    step = batch()
    del step["points_batch"]
    with pytest.raises(ValueError, match=r"lacks keys \['points_batch'\]"):
        encoder(step)
    step = batch()
    step["images"] = step["images"][:, :, :, :32]
    with pytest.raises(
        ValueError, match=r"batch\['images'\] must be \(B, 6, 3, 64, 176\) uint8 .*'tiny', got \(1, 6, 3, 32, 176\)"
    ):
        encoder(step)
    step = batch()
    step["points_batch"][-1] = 4
    with pytest.raises(ValueError, match=r"points_batch'\] values must lie in 0..0, got 0..4"):
        encoder(step)
    step = batch()
    step["cam2lidar"] = step["cam2lidar"][:, :5]
    with pytest.raises(ValueError, match=r"batch\['cam2lidar'\] must be \(1, 6, 4, 4\), got \(1, 5, 4, 4\)"):
        encoder(step)


@pytest.mark.slow  # 2.5-8 s on a shared 2-core CPU
@pytest.mark.timeout(120)
def test_nuscenes_preset_shapes():
    config = load_preset("nuscenes_r50_256x704")
    torch.manual_seed(0)
    model = TacoccEncoder(config).eval()
    with torch.no_grad():
        out = model(batch(config, points=3000))
    check(out, config)
    assert out.fused.shape == (1, 64, 100, 100, 8)


def test_cpu_bf16_autocast_agrees_with_fp32(encoder):
    """The dtype plumbing of the CUDA bf16 path (geometry and spconv kept in float32), checked on the CPU."""
    step = batch(points=3000)
    with torch.no_grad():
        ref = encoder(step)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = encoder(step)
    assert torch.equal(out.image_occupied, ref.image_occupied)
    assert torch.equal(out.lidar_occupied, ref.lidar_occupied)
    for name in ("image_volume", "lidar_volume", "fused"):
        a, b = getattr(out, name).float(), getattr(ref, name)
        rel = (a - b).norm() / b.norm().clamp(min=1e-6)
        assert rel < 0.05, f"{name}: relative L2 difference {rel:.3f}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_agrees_with_cpu_fp32(encoder):
    step = batch(points=3000)
    with torch.no_grad():
        ref = encoder(step)
        gpu = copy.deepcopy(encoder).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = gpu({k: v.cuda() for k, v in step.items()})
    assert torch.equal(out.image_occupied.cpu(), ref.image_occupied)
    assert torch.equal(out.lidar_occupied.cpu(), ref.lidar_occupied)
    for name in ("image_volume", "lidar_volume", "fused"):
        a, b = getattr(out, name).float().cpu(), getattr(ref, name)
        rel = (a - b).norm() / b.norm().clamp(min=1e-6)
        assert rel < 0.05, f"{name}: relative L2 difference {rel:.3f}"


def test_sky_pixels_do_not_reach_the_image_encoder(encoder):
    step_a, step_b = batch(seed=1), batch(seed=2)
    masks = torch.zeros(1, 6, 64, 176, dtype=torch.bool)
    masks[:, :, :20] = True
    step_b["images"][:, :, :, 20:] = step_a["images"][:, :, :, 20:]  # differ only in the masked rows
    with torch.no_grad():
        feats_a = encoder.encode_images(step_a["images"], masks)
        feats_b = encoder.encode_images(step_b["images"], masks)
        unmasked_b = encoder.encode_images(step_b["images"], torch.zeros_like(masks))
    torch.testing.assert_close(feats_a, feats_b)
    assert not torch.allclose(feats_a, unmasked_b)
