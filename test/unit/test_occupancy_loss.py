import dataclasses
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tacocc_core.config import LossConfig
from tacocc_core.losses.lovasz import lovasz_softmax
from tacocc_core.losses.occupancy import OccupancyLoss, pool_labels, weighted_cross_entropy
from tacocc_core.model.occupancy_head import CascadedOccupancyHead, HeadOutput


def pool_reference(labels: np.ndarray, f: int) -> np.ndarray:
    """The pooling rule written out block by block."""
    b, x, y, z = labels.shape
    out = np.zeros((b, x // f, y // f, z // f), dtype=np.uint8)
    for n, i, j, k in itertools.product(range(b), range(x // f), range(y // f), range(z // f)):
        block = labels[n, i * f : (i + 1) * f, j * f : (j + 1) * f, k * f : (k + 1) * f].ravel()
        known = block[block != 255]
        semantic = known[known > 0]
        if known.size == 0:
            out[n, i, j, k] = 255
        elif semantic.size:
            values, counts = np.unique(semantic, return_counts=True)
            out[n, i, j, k] = values[counts == counts.max()].min()
        else:
            out[n, i, j, k] = 0
    return out


@pytest.mark.parametrize("factor", [2, 3])
def test_pooling_matches_the_block_by_block_rule(factor):
    rng = np.random.default_rng(factor)
    # mostly empty, some classes, some ignore: every kind of block occurs
    labels = rng.choice([0, 0, 0, 255, 255, 1, 4, 4, 16], size=(2, 6 * factor // 2, 4 * factor // 2, 2 * factor))
    labels = labels.astype(np.uint8)
    pooled = pool_labels(torch.from_numpy(labels), factor)
    assert pooled.dtype == torch.uint8
    np.testing.assert_array_equal(pooled.numpy(), pool_reference(labels, factor))


def test_pooling_examples_by_hand():
    block = torch.zeros(1, 2, 2, 2, dtype=torch.uint8)
    assert pool_labels(block, 2).item() == 0
    block[0, 0, 0, 0] = 7  # one pedestrian voxel among seven empty ones: the block is occupied
    assert pool_labels(block, 2).item() == 7
    block[0, 1, 1, 1] = 4
    assert pool_labels(block, 2).item() == 4  # tie between 4 and 7: the lower id
    assert pool_labels(torch.full((1, 2, 2, 2), 255, dtype=torch.uint8), 2).item() == 255
    with pytest.raises(ValueError, match=r"\(3, 2, 2\) is not divisible by factor 2"):
        pool_labels(torch.zeros(1, 3, 2, 2), 2)


def test_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]).T.reshape(1, 2, 3, 1, 1)
    labels = torch.tensor([0, 1, 255]).reshape(1, 3, 1, 1)
    weights = torch.tensor([1.0, 3.0])
    nll = [-F.log_softmax(torch.tensor([2.0, 0.0]), 0)[0], -F.log_softmax(torch.tensor([0.0, 1.0]), 0)[1]]
    expected = (1.0 * nll[0] + 3.0 * nll[1]) / 4.0  # weighted mean over the two labelled voxels
    assert float(weighted_cross_entropy(logits, labels, weights)) == pytest.approx(float(expected))
    empty = weighted_cross_entropy(logits, torch.full_like(labels, 255), weights)
    assert float(empty) == 0.0 and not torch.isnan(empty)


def fake_output(seed=0):
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(2, 17, 3, 3, 2, generator=gen, requires_grad=True)
    fine = torch.randn(2, 17, 6, 6, 4, generator=gen, requires_grad=True)
    labels = torch.randint(0, 17, (2, 6, 6, 4), generator=gen).to(torch.uint8)
    labels[0, :2] = 255
    return HeadOutput(coarse, fine, torch.zeros(2, 3, 3, 2, dtype=torch.bool)), labels


def test_total_is_the_configured_weighted_sum():
    output, labels = fake_output()
    config = LossConfig(
        ce_weight=0.7, lovasz_weight=1.3, coarse_weight=0.25, fine_weight=2.0, class_weights=tuple(range(1, 18))
    )
    terms = OccupancyLoss(config, cascade_ratio=2)(output, labels)
    weights = torch.arange(1.0, 18.0)
    coarse_labels = pool_labels(labels, 2)
    ce_c = weighted_cross_entropy(output.coarse_logits, coarse_labels, weights)
    ce_f = weighted_cross_entropy(output.fine_logits, labels, weights)
    lov_c = lovasz_softmax(output.coarse_logits, coarse_labels)
    lov_f = lovasz_softmax(output.fine_logits, labels)
    torch.testing.assert_close(terms.ce_coarse, ce_c)
    torch.testing.assert_close(terms.lovasz_fine, lov_f)
    torch.testing.assert_close(terms.total, 0.25 * (0.7 * ce_c + 1.3 * lov_c) + 2.0 * (0.7 * ce_f + 1.3 * lov_f))
    terms.total.backward()
    assert output.coarse_logits.grad.abs().sum() > 0 and output.fine_logits.grad.abs().sum() > 0
    assert set(terms.as_floats()) == {"total", "ce_coarse", "lovasz_coarse", "ce_fine", "lovasz_fine"}


def test_class_weights_change_the_cross_entropy():
    output, labels = fake_output()
    uniform = OccupancyLoss(LossConfig(), 2)(output, labels).ce_fine
    skewed = OccupancyLoss(dataclasses.replace(LossConfig(), class_weights=(0.1,) + (5.0,) * 16), 2)(output, labels)
    assert abs(float(skewed.ce_fine.detach()) - float(uniform.detach())) > 1e-3


def test_switched_off_terms_are_zero():
    output, labels = fake_output()
    terms = OccupancyLoss(LossConfig(lovasz_weight=0.0, coarse_weight=0.0), 2)(output, labels)
    assert float(terms.lovasz_fine.detach()) == 0.0
    torch.testing.assert_close(terms.total, terms.ce_fine)


def test_training_the_head_on_one_scene_lowers_the_loss():
    torch.manual_seed(0)
    head = CascadedOccupancyHead(4, 8, 2, fine_topk_train=50).train()
    loss_fn = OccupancyLoss(LossConfig(), 2)
    volume = torch.randn(1, 4, 4, 4, 2)
    labels = torch.zeros(1, 8, 8, 4, dtype=torch.uint8)
    labels[0, 2:6, 2:4, :2] = 4  # a car
    labels[0, :, :, 0] = torch.where(labels[0, :, :, 0] == 0, 11, labels[0, :, :, 0])  # road below
    labels[0, 7] = 255
    optimiser = torch.optim.Adam(head.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        terms = loss_fn(head(volume), labels)
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()
        losses.append(float(terms.total.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_label_shape_mismatch_is_rejected():
    output, labels = fake_output()
    with pytest.raises(ValueError, match=r"labels \(2, 6, 6\)"):
        OccupancyLoss(LossConfig(), 2)(output, labels[..., 0])
