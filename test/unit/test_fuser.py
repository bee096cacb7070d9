import dataclasses

import pytest
import torch

import tacocc_core.model.fuser as fuser_module
import tacocc_core.model.retrieval as retrieval
from tacocc_core.config import load_preset
from tacocc_core.model.fuser import AdaptiveFuser, masked_pool
from tacocc_core.model.tacocc import TACOcc

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
    # The k maps hold each query's k where the queries are, 0 elsewhere.
    assert len(stats.maps) == 4 and stats.maps[0].shape == (2, *SHAPE) and stats.maps[2].shape == (2, 12, 12, 2)
    assert torch.equal(stats.maps[0] > 0, occ_i) and torch.equal(stats.maps[1] > 0, occ_l)
    for k in stats.candidates:
        assert int((stats.maps[0] == k).sum()) == int(stats.counts[:, 0, 0, stats.candidates.index(k)].sum())


def test_gradients_reach_every_selector_through_the_relaxation():
    torch.manual_seed(0)
    fuser = AdaptiveFuser(config()).train()
    f_i, occ_i, f_l, occ_l = volumes()
    fused, _ = fuser(f_i, occ_i, f_l, occ_l, tau=0.5, noise_scale=1.0)
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


def capture_out_input(fuser: AdaptiveFuser) -> dict:
    captured = {}
    fuser.out.register_forward_hook(lambda m, inp, out: captured.__setitem__("x", inp[0]))
    return captured


def test_queries_far_from_every_key_still_get_context():
    """One LiDAR voxel in a corner: every image query retrieves it (exact KNN beyond the search cube)."""
    fuser = AdaptiveFuser(config("fixed", 3, num_scales=1)).eval()
    f_i, occ_i, f_l, occ_l = volumes(b=1)
    occ_l[:] = False
    occ_l[0, 0, 0, 0] = True
    occ_i[0, 0, 0, 0] = False
    f_l = f_l * occ_l[:, None]
    captured = {}
    fuser._output = lambda x: captured.setdefault("x", x)
    with torch.no_grad():
        fuser(f_i, occ_i, f_l, occ_l)
    c = TINY.fuser.channels
    term_image = captured["x"][:, 2 * c : 3 * c].permute(0, 2, 3, 4, 1)
    assert (term_image[occ_i].abs().sum(dim=1) > 0).all()
    assert (term_image[~occ_i] == 0).all()


@pytest.mark.parametrize(
    ("mode", "train", "fill_l"), [("adaptive", False, 0.1), ("adaptive", True, 0.01), ("fixed", False, 0.003)]
)
def test_tree_search_gives_the_fused_volume_of_the_cube_then_exact_search(monkeypatch, mode, train, fill_l):
    """The fuser with its KD-tree KNN equals the fuser with the earlier search, bit for bit (sparse LiDAR:
    most image queries settle beyond the cube), forward and gradients."""

    def earlier(q, keys, k, radius, volume_shape, skip_centre=True):
        volume = retrieval.index_volume(keys, tuple(volume_shape[1:]), volume_shape[0])
        return retrieval.knn_cube_then_exact(q, keys, volume, k, radius, skip_centre)

    results = []
    for search in (fuser_module.knn, earlier):
        monkeypatch.setattr(fuser_module, "knn", search)
        torch.manual_seed(0)
        fuser = AdaptiveFuser(config(mode)).train(train)
        f_i, occ_i, f_l, occ_l = volumes(fill_l=fill_l)
        f_i.requires_grad_(True)
        fused, stats = fuser(f_i, occ_i, f_l, occ_l, tau=0.5, noise_scale=1.0)
        fused.square().sum().backward()
        results.append((fused.detach(), stats.counts, stats.maps, f_i.grad))
    (fused_a, counts_a, maps_a, grad_a), (fused_b, counts_b, maps_b, grad_b) = results
    assert torch.equal(fused_a, fused_b) and torch.equal(counts_a, counts_b) and torch.equal(grad_a, grad_b)
    assert all(torch.equal(a, b) for a, b in zip(maps_a, maps_b, strict=True))


def with_weights_of(trained: AdaptiveFuser, mode: str, fixed_k: int = 3) -> AdaptiveFuser:
    """A fuser of `mode` holding the weights of `trained` (the selectors left out)."""
    other = AdaptiveFuser(config(mode, fixed_k)).eval()
    missing, unexpected = other.load_state_dict(trained.state_dict(), strict=False)
    dropped = ("selectors.", "attention.") if mode == "none" else ("selectors.",)
    assert not missing and all(key.startswith(dropped) for key in unexpected)
    return other


def test_a_fixed_k_changes_the_fused_volume_with_the_same_weights():
    torch.manual_seed(0)
    trained = AdaptiveFuser(config("adaptive")).eval()
    f_i, occ_i, f_l, occ_l = volumes()
    outputs = {}
    with torch.no_grad():
        for k in (1, 2, 3):
            outputs[k] = with_weights_of(trained, "fixed", k)(f_i, occ_i, f_l, occ_l)[0]
        outputs[0] = with_weights_of(trained, "none")(f_i, occ_i, f_l, occ_l)[0]
    for a, b in ((0, 1), (1, 2), (2, 3), (1, 3)):
        assert (outputs[a] - outputs[b]).abs().max() > 1e-3, (a, b)
    assert not hasattr(trained, "forced_k")


def test_eq1_as_printed_has_no_context_in_the_weighted_halves():
    """Eq. 1: the last two blocks of Concat are F_I * w_I and F_L * w_L, exactly (zero where F is zero)."""
    torch.manual_seed(0)
    f_i, occ_i, f_l, occ_l = volumes()
    captured = {}
    for context in (False, True):
        cfg = config()
        cfg = dataclasses.replace(cfg, fuser=dataclasses.replace(cfg.fuser, context_terms=context))
        torch.manual_seed(0)
        fuser = AdaptiveFuser(cfg).eval()
        hook = fuser.out[0].register_forward_pre_hook(lambda _m, args, c=context: captured.__setitem__(c, args[0]))
        with torch.no_grad():
            fuser(f_i, occ_i, f_l, occ_l)
        hook.remove()
    c = TINY.fuser.channels
    plain, with_context = captured[False], captured[True]
    f_i_proj, f_l_proj = plain[:, :c], plain[:, c : 2 * c]
    assert torch.equal(plain[:, : 2 * c], with_context[:, : 2 * c])
    # Where the projected image volume is zero, its weighted block is zero in Eq. 1 ...
    assert torch.equal(plain[:, 2 * c : 3 * c][f_i_proj == 0], torch.zeros_like(plain[:, 2 * c : 3 * c][f_i_proj == 0]))
    # ... it is F * w with w in [0, 1] (same sign, not larger) ...
    for block, f in ((plain[:, 2 * c : 3 * c], f_i_proj), (plain[:, 3 * c :], f_l_proj)):
        assert bool((block * f >= 0).all()) and bool((block.abs() <= f.abs() + 1e-6).all())
    # ... while the context terms make it differ at the queries.
    assert (with_context[:, 2 * c :] - plain[:, 2 * c :]).abs().max() > 1e-3


@pytest.mark.parametrize("exclude", [False, True])
def test_own_voxel_is_retrievable_unless_excluded(monkeypatch, exclude):
    seen = []
    real = fuser_module.knn

    def spy(*args, **kwargs):
        index, offset = real(*args, **kwargs)
        seen.append(offset)
        return index, offset

    monkeypatch.setattr(fuser_module, "knn", spy)
    cfg = config("fixed", 1, num_scales=1)
    cfg = dataclasses.replace(cfg, fuser=dataclasses.replace(cfg.fuser, exclude_own_voxel=exclude))
    torch.manual_seed(0)
    fuser = AdaptiveFuser(cfg).eval()
    f_i, occ_i, f_l, occ_l = volumes(fill_i=0.5, fill_l=0.5)
    with torch.no_grad():
        fuser(f_i, occ_i, f_l, occ_l)
    # Image queries at voxels that also hold a LiDAR key: their nearest key is that voxel (offset 0) unless excluded.
    both = (occ_i & occ_l)[occ_i]
    at_own = (seen[0][:, 0] == 0).all(dim=-1)
    assert bool(both.any())
    if exclude:
        assert not bool(at_own.any())
    else:
        assert torch.equal(at_own, both)


def test_training_forward_is_the_hard_k_of_inference():
    """With the noise faded out, the relaxed training forward equals the inference forward (same k, same F_IL input)."""
    torch.manual_seed(0)
    fuser = AdaptiveFuser(config())
    f_i, occ_i, f_l, occ_l = volumes()
    inputs = {}
    for training in (True, False):
        fuser.train(training)
        captured = {}
        fuser._output = lambda x, captured=captured: captured.setdefault("x", x)
        _, stats = fuser(f_i, occ_i, f_l, occ_l, tau=0.3, noise_scale=0.0)
        inputs[training] = (captured["x"].detach(), stats.counts)
    assert torch.equal(inputs[True][1], inputs[False][1])
    torch.testing.assert_close(inputs[True][0], inputs[False][0], rtol=1e-5, atol=1e-6)


def test_gumbel_noise_leaves_the_global_stream_alone_and_follows_the_sample():
    torch.manual_seed(0)
    fuser = AdaptiveFuser(config()).train()
    f_i, occ_i, f_l, occ_l = volumes()
    state = torch.random.get_rng_state()
    fuser.seed_noise(5)
    _, both = fuser(f_i, occ_i, f_l, occ_l, tau=1.0, noise_scale=1.0, noise_keys=[70, 90])
    assert torch.equal(torch.random.get_rng_state(), state)
    # The second sample alone (as on another process) draws the same noise, hence the same k.
    _, alone = fuser(f_i[1:], occ_i[1:], f_l[1:], occ_l[1:], tau=1.0, noise_scale=1.0, noise_keys=[90])
    assert all(torch.equal(a[1:], b) for a, b in zip(both.maps, alone.maps, strict=True))
    _, other = fuser(f_i[1:], occ_i[1:], f_l[1:], occ_l[1:], tau=1.0, noise_scale=1.0, noise_keys=[91])
    assert not all(torch.equal(a, b) for a, b in zip(alone.maps, other.maps, strict=True))
    fuser.seed_noise(6)
    _, reseeded = fuser(f_i[1:], occ_i[1:], f_l[1:], occ_l[1:], tau=1.0, noise_scale=1.0, noise_keys=[90])
    assert not all(torch.equal(a, b) for a, b in zip(alone.maps, reseeded.maps, strict=True))


MODES = [("none", 3), ("fixed", 1), ("fixed", 3), ("adaptive", 3)]


def test_every_mode_starts_from_the_same_weights():
    """For one seed, every tensor that two fuser modes share is identical, in the whole network."""
    states, rng_after = {}, {}
    for mode, k in MODES:
        torch.manual_seed(11)
        net = TACOcc(config(mode, k))
        rng_after[(mode, k)] = torch.random.get_rng_state()
        states[(mode, k)] = net.state_dict()
    reference = states[("adaptive", 3)]
    for key, state in states.items():
        assert torch.equal(rng_after[key], rng_after[("adaptive", 3)]), key
        shared = set(state) & set(reference)
        assert len(shared) > 100
        for name in shared:
            assert torch.equal(state[name], reference[name]), (key, name)
    # What differs between the modes is only the retrieval's own modules.
    only_adaptive = set(reference) - set(states[("none", 3)])
    assert only_adaptive and all(
        n.startswith(("encoder.fuser.attention", "encoder.fuser.selectors")) for n in only_adaptive
    )
    torch.manual_seed(12)  # and the seed does matter
    other_seed = TACOcc(config()).state_dict()
    assert any(not torch.equal(other_seed[n], reference[n]) for n in reference if n.startswith("head."))
    assert any(not torch.equal(other_seed[n], reference[n]) for n in reference if n.startswith("encoder.fuser."))


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
