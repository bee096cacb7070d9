import pytest
import torch

from tacocc_core.model.selector import NeighbourhoodSelector, select_k, slot_mask, tau_at

CANDIDATES = torch.tensor([1.0, 2.0, 3.0])


def test_tau_schedule():
    assert tau_at(0, (1.0, 0.1), 100) == pytest.approx(1.0)
    assert tau_at(50, (1.0, 0.1), 100) == pytest.approx(0.1**0.5)
    assert tau_at(100, (1.0, 0.1), 100) == pytest.approx(0.1)
    assert tau_at(10**6, (1.0, 0.1), 100) == pytest.approx(0.1)
    assert tau_at(None, (1.0, 0.1), 100) == pytest.approx(0.1)
    assert tau_at(5, (1.0, 0.1), 0) == pytest.approx(0.1)
    taus = [tau_at(s, (2.0, 0.5), 10) for s in range(11)]
    assert all(a > b for a, b in zip(taus, taus[1:], strict=False))


def test_eval_is_argmax():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 9.0], [0.0, 3.0, 1.0]])
    k, k_soft = select_k(logits, CANDIDATES, tau=1.0, training=False)
    assert k.tolist() == [1.0, 3.0, 2.0] and torch.equal(k, k_soft)


def test_training_k_is_a_rounded_expectation_with_gradient():
    torch.manual_seed(0)
    selector = NeighbourhoodSelector(8, 3)
    query = torch.randn(64, 8)
    k, k_soft = select_k(selector(query), CANDIDATES, tau=0.5, training=True)
    assert set(k.detach().tolist()) <= {1.0, 2.0, 3.0}
    assert torch.equal(k.detach(), torch.round(k_soft.detach()))
    assert ((k_soft >= 1) & (k_soft <= 3)).all()
    (k * torch.linspace(-1, 1, 64)).sum().backward()
    grads = [p.grad for p in selector.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_slot_mask_forward_exact_and_gradient_at_boundary():
    k_soft = torch.tensor([1.2, 2.6, 2.95], requires_grad=True)
    k = torch.round(k_soft.detach()) + (k_soft - k_soft.detach())
    mask = slot_mask(k, k_soft, 3)
    assert mask.tolist() == [[1, 0, 0], [1, 1, 1], [1, 1, 1]]
    mask.sum().backward()
    assert k_soft.grad.tolist() == [1.0, 1.0, 1.0]  # the slot at each soft boundary passes gradient
