import itertools

import pytest
import torch

from tacocc_core.losses.lovasz import jaccard_weights, lovasz_softmax, lovasz_softmax_flat


def jaccard_loss(mistakes: set[int], foreground: set[int]) -> float:
    """Delta_c(M) = |M| / |F u M|, the Jaccard loss of a set of mispredicted voxels."""
    union = foreground | mistakes
    return len(mistakes) / len(union) if union else 0.0


def lovasz_extension_by_thresholds(errors: list[float], foreground: set[int]) -> float:
    """f(m) = integral over t in [0, max m] of Delta({i : m_i >= t}) dt, evaluated piece by piece."""
    total, previous = 0.0, 0.0
    for level in sorted(set(errors)):
        above = {i for i, e in enumerate(errors) if e >= level}
        total += (level - previous) * jaccard_loss(above, foreground)
        previous = level
    return total


def brute_force(probs: torch.Tensor, labels: torch.Tensor) -> float:
    values = []
    for c in range(probs.shape[1]):
        foreground = {i for i, y in enumerate(labels.tolist()) if y == c}
        if not foreground:
            continue
        errors = [abs(float(i in foreground) - float(p)) for i, p in enumerate(probs[:, c].tolist())]
        values.append(lovasz_extension_by_thresholds(errors, foreground))
    return sum(values) / len(values)


@pytest.mark.parametrize(("points", "classes", "seed"), list(itertools.product([1, 2, 5, 9], [2, 3, 4], [0, 1])))
def test_matches_the_lovasz_extension_evaluated_set_by_set(points, classes, seed):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(points, classes, generator=gen, dtype=torch.float64) * 2, dim=1)
    labels = torch.randint(0, classes, (points,), generator=gen)
    expected = brute_force(probs, labels)
    assert float(lovasz_softmax_flat(probs, labels)) == pytest.approx(expected, abs=1e-12)


def test_ties_between_errors_do_not_matter():
    probs = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.1, 0.9]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    assert float(lovasz_softmax_flat(probs, labels)) == pytest.approx(brute_force(probs, labels), abs=1e-12)


def test_jaccard_weights_sum_to_the_jaccard_loss_of_everything():
    fg = torch.tensor([1, 0, 1, 1, 0])
    assert float(jaccard_weights(fg).sum()) == pytest.approx(1.0)  # every voxel wrong: IoU 0
    assert jaccard_weights(fg).shape == (5,)


def test_perfect_prediction_costs_nothing_and_ignored_voxels_do_not_count():
    labels = torch.tensor([[[[0], [3]], [[2], [255]]]])  # (B, X, Y, Z) = (1, 2, 2, 1)
    logits = torch.nn.functional.one_hot(labels.clamp(max=3), 4).permute(0, 4, 1, 2, 3).float() * 50
    assert float(lovasz_softmax(logits, labels)) == pytest.approx(0.0, abs=1e-6)  # the 255 voxel says 3
    labels[0, 1, 1, 0] = 0
    assert float(lovasz_softmax(logits, labels)) > 0.1


def test_all_ignored_gives_zero_with_a_gradient():
    logits = torch.randn(1, 4, 2, 2, 2, requires_grad=True)
    loss = lovasz_softmax(logits, torch.full((1, 2, 2, 2), 255))
    loss.backward()
    assert float(loss.detach()) == 0.0 and logits.grad is not None


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"logits \(1, 4, 2, 2, 2\) and labels \(1, 2, 2\)"):
        lovasz_softmax(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 2, 2))
