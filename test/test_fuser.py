import dataclasses

import pytest
import torch

from tacocc_core.config import load_preset
from tacocc_core.model.fuser import AdaptiveFuser, masked_pool

TINY = load_preset("tiny")
SHAPE = (24, 24, 4)  # tiny coarse grid


def config(mode: str = "adaptive", fixed_k: int = 3, num_scales: int = 2):
    return dataclasses.replace(
        TINY, fuser=dataclasses.replace(TINY.fuser, mode=mode, fixed_k=fixed_k, num_scales=num_scales)
    )


def volumes(seed: int = 0, b: int = 2, fill_i: float = 0.3, fill_l: float = 0.1):
    gen = torch.Generator().manual_seed(seed)
    occ_i = torch.rand(b, *SHAPE, generator=gen) < fill_i
    occ_l = torch.rand(b, *SHAPE, generator=gen) < fill_l
    f_i = torch.randn(b, TINY.view_transform.channels, *SHAPE, generator=gen) * occ_i[:, None]
    f_l = torch.randn(b, TINY.lidar.encoder_channels[-1], *SHAPE, generator=gen) * occ_l[:, None]
    return f_i, occ_i, f_l, occ_l


@pytest.mark.parametrize(("mode", "fixed_k"), [("adaptive", 3), ("fixed", 1), ("fixed", 2), ("fixed", 3), ("none", 3)])
def test_modes_shapes_and_k_stats(mode, fixed_k):
    torch.manual_seed(0)
    fuser = AdaptiveFuser(config(mode, fixed_k)).eval()
    f_i, occ_i, f_l, occ_l = volumes()
    with torch.no_grad():
        fused, stats = fuser(f_i, occ_i, f_l, occ_l)
    assert fused.shape == (2, TINY.fuser.channels, *SHAPE)
    assert torch.isfinite(fused).all()
    if mode == "none":
        assert stats.counts.numel() == 0 and len(fuser.attention) == 0
        return
    assert stats.candidates == ((1, 2, 3) if mode == "adaptive" else (fixed_k,))
    assert stats.counts.shape == (2, 2, 2, len(stats.candidates))
    # Every non-zero voxel of each modality is a query at scale 0: the histogram counts them all.
    for b in range(2):
        assert stats.counts[b, 0, 0].sum() == occ_i[b].sum()
        assert stats.counts[b, 1, 0].sum() == occ_l[b].sum()
    table = stats.as_dict(1)
    assert set(table) == {"image", "lidar"} and set(table["image"]) == {0, 1}


def test_gradients_reach_every_selector_through_the_ste():
    torch.manual_seed(0)
    fuser = AdaptiveFuser(config()).train()
    f_i, occ_i, f_l, occ_l = volumes()
    fused, _ = fuser(f_i, occ_i, f_l, occ_l, tau=0.5)
    (fused * torch.randn_like(fused)).sum().backward()
    assert len(fuser.selectors) == 4  # 2 modalities x 2 scales
    for selector in fuser.selectors:
        grad = selector.mlp[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize(("fill_i", "fill_l"), [(0.0, 0.1), (0.3, 0.0), (0.0, 0.0)])
@pytest.mark.parametrize("mode", ["adaptive", "fixed", "none"])
def test_no_non_zero_voxels_on_a_side(fill_i, fill_l, mode):
    fuser = AdaptiveFuser(config(mode)).train()
    f_i, occ_i, f_l, occ_l = volumes(fill_i=fill_i, fill_l=fill_l)
    fused, stats = fuser(f_i, occ_i, f_l, occ_l)
    assert torch.isfinite(fused).all()
    fused.sum().backward()
    if mode != "none":
        assert stats.counts[:, 0, 0].sum() == occ_i.sum() and stats.counts[:, 1, 0].sum() == occ_l.sum()


def test_query_without_keys_in_range_gets_zero_weight():
    """Image voxels far from every LiDAR voxel (beyond the radius at every scale) are fused as if unweighted."""
    fuser = AdaptiveFuser(config("fixed", 3, num_scales=1)).eval()
    f_i, occ_i, f_l, occ_l = volumes(b=1)
    occ_l[:] = False
    occ_l[0, 0, 0, 0] = True
    f_l = f_l * occ_l[:, None]
    captured = {}
    fuser.out.register_forward_hook(lambda m, inp, out: captured.setdefault("x", inp[0]))
    with torch.no_grad():
        fuser(f_i, occ_i, f_l, occ_l)
    c = TINY.fuser.channels
    weighted_image = captured["x"][:, 2 * c : 3 * c]
    far = occ_i.clone()
    far[:, :3, :3, :3] = False  # within radius 2 of the only LiDAR voxel
    assert far.any()
    assert (weighted_image.permute(0, 2, 3, 4, 1)[far] == 0).all()


def test_masked_pool_averages_occupied_voxels_only():
    vol = torch.zeros(1, 1, 2, 2, 2)
    occ = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    vol[0, 0, 0, 0, 0], occ[0, 0, 0, 0] = 4.0, True
    vol[0, 0, 1, 1, 1], occ[0, 1, 1, 1] = 2.0, True
    pooled, mask = masked_pool(vol, occ, 1)
    assert pooled.item() == pytest.approx(3.0) and mask.tolist() == [[[[True]]]]


def test_rejects_volumes_off_the_coarse_grid():
    fuser = AdaptiveFuser(TINY)
    f_i, occ_i, f_l, occ_l = volumes()
    with pytest.raises(ValueError, match=r"coarse grid \(24, 24, 4\), got image \(24, 24, 2\)"):
        fuser(f_i[..., :2], occ_i[..., :2], f_l, occ_l)
