import dataclasses
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from tacocc_core.config import load_preset
from tacocc_core.model.occupancy_head import CascadedOccupancyHead, select_refined


def randomised(head: CascadedOccupancyHead, seed: int = 0) -> CascadedOccupancyHead:
    """Give the zero-initialised last fine layer weights, so that refinement changes the logits."""
    torch.manual_seed(seed)
    with torch.no_grad():
        head.fine_mlp[-1].weight.normal_(0, 0.5)
        head.fine_mlp[-1].bias.normal_(0, 0.5)
    return head


def dense_reference(head: CascadedOccupancyHead, volume: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """The fine stage evaluated at every fine voxel by full-volume upsampling, then kept where refined."""
    r = head.ratio
    features = head.coarse(volume)
    coarse_logits = head.coarse_classifier(features)
    up = F.interpolate(coarse_logits, scale_factor=r, mode="trilinear", align_corners=False)
    up_features = F.interpolate(features, scale_factor=r, mode="trilinear", align_corners=False)
    b, c, x, y, z = up_features.shape
    i, j, k = torch.meshgrid(torch.arange(x), torch.arange(y), torch.arange(z), indexing="ij")
    child = (i % r) * r * r + (j % r) * r + (k % r)
    embedded = up_features + head.child_embedding(child).permute(3, 0, 1, 2)[None]
    delta = head.fine_mlp(embedded.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
    mask = refined.repeat_interleave(r, 1).repeat_interleave(r, 2).repeat_interleave(r, 3)[:, None]
    return torch.where(mask, up + delta, up)


@pytest.fixture(scope="module")
def tiny():
    return load_preset("tiny")


def test_shapes_at_the_tiny_preset(tiny):
    head = CascadedOccupancyHead.from_config(tiny, in_channels=16).eval()
    with torch.no_grad():
        out = head(torch.randn(2, 16, 24, 24, 4))
    assert out.coarse_logits.shape == (2, 17, 24, 24, 4)
    assert out.fine_logits.shape == (2, 17, *tiny.grid.spec().shape)
    assert out.refined.shape == (2, 24, 24, 4) and out.refined.dtype == torch.bool
    assert torch.isfinite(out.fine_logits).all()


def test_nuscenes_preset_gives_the_200x200x16_grid():
    config = load_preset("nuscenes_r50_256x704")
    narrow = dataclasses.replace(config, head=dataclasses.replace(config.head, channels=4))
    head = CascadedOccupancyHead.from_config(narrow, in_channels=4).eval()
    with torch.no_grad():
        out = head(torch.randn(1, 4, 100, 100, 8))
    assert out.coarse_logits.shape == (1, 17, 100, 100, 8)
    assert out.fine_logits.shape == (1, 17, 200, 200, 16)


@pytest.mark.parametrize("ratio", [2, 3])
def test_sparse_refinement_matches_the_dense_reference(ratio):
    torch.manual_seed(1)
    head = randomised(CascadedOccupancyHead(5, 8, ratio, fine_topk_train=10)).double().eval()
    volume = torch.randn(2, 5, 6, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        out = head(volume)
        expected = dense_reference(head, volume, out.refined)
    assert 0 < out.refined.sum() < out.refined.numel()  # some refined, some not
    torch.testing.assert_close(out.fine_logits, expected)


@pytest.mark.parametrize(
    ("ratio", "batch", "dtype"), [(2, 2, torch.float32), (3, 1, torch.float32), (2, 1, torch.float64)]
)
def test_inference_fast_path_matches_the_gathering_reference(ratio, batch, dtype):
    """Eval mode runs `_refine_dense`; `_refine` (what training runs) is its reference twin: same logits."""
    torch.manual_seed(2)
    head = randomised(CascadedOccupancyHead(6, 16, ratio, fine_topk_train=10), seed=3).to(dtype).eval()
    with torch.no_grad():
        head.child_embedding.weight.normal_(0, 1.0)
        features = head.coarse(torch.randn(batch, 6, 7, 5, 4, dtype=dtype))
        coarse_logits = head.coarse_classifier(features)
        up = F.interpolate(coarse_logits, scale_factor=ratio, mode="trilinear", align_corners=False)
        refined = select_refined(coarse_logits, None)
        refined[0, 0] = True  # the border planes, where trilinear sampling clamps
        refined[-1, :, -1] = False
        fast = head._refine_dense(features, up, refined)
        reference = head._refine(features, up, refined)
        nothing = head._refine_dense(features, up, torch.zeros_like(refined))
    assert 0 < refined.sum() < refined.numel()
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fast, reference, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(nothing, up)
    assert (fast - up).abs().amax() > 0.1  # the correction is not trivially zero


def test_unrefined_voxels_keep_the_upsampled_coarse_logits():
    head = randomised(CascadedOccupancyHead(5, 8, 2, fine_topk_train=10)).eval()
    with torch.no_grad():
        out = head(torch.randn(1, 5, 6, 6, 4))
    up = F.interpolate(out.coarse_logits, scale_factor=2, mode="trilinear", align_corners=False)
    keep = ~out.refined.repeat_interleave(2, 1).repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(out.fine_logits.permute(0, 2, 3, 4, 1)[keep], up.permute(0, 2, 3, 4, 1)[keep])
    changed = (out.fine_logits - up).abs().amax(dim=1) > 1e-6
    assert changed.sum() > 0 and not (changed & keep).any()


def test_eval_upsamples_channels_last_with_the_same_numbers():
    """At inference the coarse logits are upsampled from channels-last memory (faster on the CPU): the same
    numbers as the contiguous upsampling training runs, bit for bit in bf16 and within rounding in float32."""
    head = randomised(CascadedOccupancyHead(5, 8, 2, fine_topk_train=10)).eval()
    volume = torch.randn(2, 5, 6, 5, 3)
    with torch.no_grad():
        out = head(volume)
        up = F.interpolate(out.coarse_logits, scale_factor=2, mode="trilinear", align_corners=False)
        expected = head._refine_dense(head.coarse(volume), up, out.refined)
    torch.testing.assert_close(out.fine_logits, expected, rtol=1e-6, atol=1e-6)
    logits = torch.randn(1, 17, 6, 5, 3).bfloat16()
    channels_last = logits.contiguous(memory_format=torch.channels_last_3d)
    upsample = partial(F.interpolate, scale_factor=2, mode="trilinear", align_corners=False)
    assert torch.equal(upsample(channels_last), upsample(logits))


def test_training_refines_at_most_topk_of_the_most_occupied_voxels():
    torch.manual_seed(0)
    logits = torch.randn(2, 17, 6, 6, 4)
    logits[:, 0] -= 3.0  # nearly everything called occupied
    occupied = logits.argmax(1) != 0
    chosen = select_refined(logits, topk=7)
    assert (chosen.flatten(1).sum(1) == 7).all() and not (chosen & ~occupied).any()
    score = 1 - logits.softmax(1)[:, 0]
    for b in range(2):
        lowest_kept = score[b][chosen[b]].min()
        assert (score[b][occupied[b] & ~chosen[b]] <= lowest_kept).all()
    assert torch.equal(select_refined(logits, topk=None), occupied)
    assert torch.equal(select_refined(logits, topk=10_000), occupied)


def test_train_mode_bounds_and_eval_mode_refines_all():
    head = CascadedOccupancyHead(4, 8, 2, fine_topk_train=5)
    with torch.no_grad():
        head.coarse_classifier.bias.copy_(torch.arange(17.0))  # class 16 wins everywhere: all occupied
        assert head.train()(torch.randn(1, 4, 4, 4, 2)).refined.sum() == 5
        assert head.eval()(torch.randn(1, 4, 4, 4, 2)).refined.sum() == 32


def test_fine_stage_starts_as_the_upsampled_coarse_stage_and_learns():
    head = CascadedOccupancyHead(4, 8, 2, fine_topk_train=100).train()
    with torch.no_grad():
        head.coarse_classifier.bias.copy_(torch.arange(17.0))
    out = head(torch.randn(1, 4, 4, 4, 2))
    up = F.interpolate(out.coarse_logits, scale_factor=2, mode="trilinear", align_corners=False)
    torch.testing.assert_close(out.fine_logits, up)
    out.fine_logits[:, 3].sum().backward()
    assert head.fine_mlp[-1].weight.grad.abs().sum() > 0
    assert head.coarse[0][0].weight.grad.abs().sum() > 0


def test_bad_input_and_inconsistent_config_are_rejected(tiny):
    head = CascadedOccupancyHead(4, 8, 2, fine_topk_train=5)
    with pytest.raises(ValueError, match=r"got \(1, 3, 4, 4, 2\)"):
        head(torch.zeros(1, 3, 4, 4, 2))
    with pytest.raises(ValueError, match="head.cascade_ratio=4"):  # refused already by the config itself
        dataclasses.replace(tiny, head=dataclasses.replace(tiny.head, cascade_ratio=4))
