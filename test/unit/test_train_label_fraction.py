import numpy as np
import pytest

from tacocc_core.train.label_fraction import (
    apply_label_fraction,
    select_labelled_frames,
    token_hash,
    voxel_keep_mask,
)

TOKENS = [f"sample{i:04d}" for i in range(200)]


def test_frame_selection_is_exact_and_independent_of_order():
    chosen = select_labelled_frames(TOKENS, 0.1, seed=0)
    assert len(chosen) == 20 and chosen <= set(TOKENS)
    assert select_labelled_frames(reversed(TOKENS + TOKENS[:5]), 0.1, seed=0) == chosen
    assert select_labelled_frames(TOKENS, 0.1, seed=1) != chosen


def test_frame_selection_is_nested_across_fractions():
    # Ranking by hash: the 10% subset is inside the 30% subset of the same seed.
    assert select_labelled_frames(TOKENS, 0.1, 4) <= select_labelled_frames(TOKENS, 0.3, 4)


def test_edge_fractions():
    assert select_labelled_frames(TOKENS, 0.0, 0) == frozenset()
    assert len(select_labelled_frames(TOKENS[:3], 0.01, 0)) == 1
    assert select_labelled_frames(TOKENS, 1.0, 0) == frozenset(TOKENS)
    with pytest.raises(ValueError, match="label fraction must be in"):
        select_labelled_frames(TOKENS, 1.5, 0)


def test_hash_is_stable_across_processes():
    # Python's own hash() of a str is salted per process; the selection must not be.
    assert token_hash("abc", 7) == token_hash("abc", 7)
    assert token_hash("abc", 7) != token_hash("abc", 8)
    import subprocess
    import sys

    code = "from tacocc_core.train.label_fraction import token_hash; print(token_hash('abc', 7))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) == token_hash("abc", 7)


def test_voxel_mask_fraction_and_determinism():
    mask = voxel_keep_mask("tok", (40, 40, 8), 0.1, seed=3)
    assert mask.dtype == bool and abs(mask.mean() - 0.1) < 0.02
    np.testing.assert_array_equal(mask, voxel_keep_mask("tok", (40, 40, 8), 0.1, seed=3))
    assert (mask != voxel_keep_mask("other", (40, 40, 8), 0.1, seed=3)).any()


def test_apply_in_both_modes():
    labels = np.random.default_rng(0).integers(0, 17, (10, 10, 4)).astype(np.uint8)
    chosen = select_labelled_frames(["a", "b", "c", "d"], 0.5, 0)
    kept = [t for t in "abcd" if apply_label_fraction(labels, t, "frames", 0.5, 0, chosen) is not None]
    assert set(kept) == chosen
    dropped = apply_label_fraction(labels, "a", "voxels", 0.3, 0)
    keep = voxel_keep_mask("a", labels.shape, 0.3, 0)
    np.testing.assert_array_equal(dropped[keep], labels[keep])
    assert (dropped[~keep] == 255).all() and dropped.dtype == np.uint8
    assert apply_label_fraction(None, "a", "voxels", 0.3, 0) is None
    assert apply_label_fraction(labels, "a", "voxels", 1.0, 0) is labels


def test_bad_mode_and_missing_selection_are_named():
    labels = np.zeros((2, 2, 2), np.uint8)
    with pytest.raises(ValueError, match="labelled_frames"):
        apply_label_fraction(labels, "a", "frames", 0.5, 0)
    with pytest.raises(ValueError, match="'pixels'"):
        apply_label_fraction(labels, "a", "pixels", 0.5, 0)
