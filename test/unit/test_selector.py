import pytest
import torch

from tacocc_core.model.selector import NeighbourhoodSelector, choose_k, gumbel_noise, noise_scale_at, tau_at

CANDIDATES = torch.tensor([1, 2, 3])


def test_tau_schedule():
    assert tau_at(0, (1.0, 0.1), 100) == pytest.approx(1.0)
    assert tau_at(50, (1.0, 0.1), 100) == pytest.approx(0.1**0.5)
    assert tau_at(100, (1.0, 0.1), 100) == pytest.approx(0.1)
    assert tau_at(10**6, (1.0, 0.1), 100) == pytest.approx(0.1)
    assert tau_at(None, (1.0, 0.1), 100) == pytest.approx(0.1)
    assert tau_at(5, (1.0, 0.1), 0) == pytest.approx(0.1)
    taus = [tau_at(s, (2.0, 0.5), 10) for s in range(11)]
    assert all(a > b for a, b in zip(taus, taus[1:], strict=False))


def test_noise_keeps_its_scale_through_training_as_the_paper_has_it():
    assert [noise_scale_at(s, 100, fade=False) for s in (0, 50, 100, 10**6)] == [1.0] * 4
    assert noise_scale_at(None, 100, fade=False) == 0.0  # inference


def test_noise_fades_out_with_the_temperature_when_asked():
    assert noise_scale_at(0, 100, fade=True) == 1.0
    assert noise_scale_at(50, 100, fade=True) == pytest.approx(0.5)
    assert noise_scale_at(100, 100, fade=True) == 0.0 and noise_scale_at(None, 100, fade=True) == 0.0
    assert noise_scale_at(3, 0, fade=True) == 0.0


def test_the_default_config_keeps_the_noise():
    from tacocc_core.config import FuserConfig

    fc = FuserConfig()
    assert not fc.noise_fade and not fc.context_terms and not fc.exclude_own_voxel
    assert noise_scale_at(fc.tau_anneal_steps * 2, fc.tau_anneal_steps, fc.noise_fade) == 1.0


def test_k_is_the_candidate_nearest_the_expectation():
    """The paper's rule, not the argmax: probabilities (0.45, 0.1, 0.45) give E = 2, so k = 2."""
    logits = torch.log(torch.tensor([[0.45, 0.1, 0.45], [0.9, 0.05, 0.05], [0.0, 0.3, 0.7], [0.2, 0.2, 0.6]]))
    choice = choose_k(logits, CANDIDATES, tau=1.0)
    assert choice.k.tolist() == [2, 1, 3, 2]  # E = 2.0, 1.15, 2.7, 2.4
    assert choice.index.tolist() == [1, 0, 2, 1]
    assert torch.equal(choice.mix, torch.nn.functional.one_hot(choice.index, 3).float())
    # Non-consecutive candidates: the nearest one to E.
    wide = choose_k(torch.log(torch.tensor([[0.4, 0.6, 1e-9], [0.7, 0.3, 1e-9]])), torch.tensor([1, 3, 8]), tau=1.0)
    assert wide.k.tolist() == [3, 1]  # E = 2.2 and 1.6


def test_mix_is_hard_forward_and_carries_the_softmax_gradient():
    torch.manual_seed(0)
    selector = NeighbourhoodSelector(8, 3)
    query = torch.randn(64, 8)
    noise = gumbel_noise((64, 3), torch.Generator().manual_seed(1))
    choice = choose_k(selector(query), CANDIDATES, tau=0.5, noise=noise, noise_scale=1.0)
    assert set(choice.k.tolist()) <= {1, 2, 3}
    assert torch.equal(choice.mix.detach(), torch.nn.functional.one_hot(choice.index, 3).float())
    outputs = torch.randn(64, 3)  # what each candidate would give
    (choice.mix * outputs).sum().backward()
    grads = [p.grad for p in selector.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_noise_comes_from_its_generator_only():
    state = torch.random.get_rng_state()
    a = gumbel_noise((5, 3), torch.Generator().manual_seed(3))
    b = gumbel_noise((5, 3), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert torch.equal(torch.random.get_rng_state(), state)


def test_noise_scale_zero_is_the_inference_rule():
    logits = torch.randn(32, 3, generator=torch.Generator().manual_seed(2))
    noise = gumbel_noise((32, 3), torch.Generator().manual_seed(4))
    clean = choose_k(logits, CANDIDATES, tau=0.3)
    assert torch.equal(choose_k(logits, CANDIDATES, tau=0.3, noise=noise, noise_scale=0.0).k, clean.k)
    assert not torch.equal(choose_k(logits, CANDIDATES, tau=0.3, noise=noise * 50, noise_scale=1.0).k, clean.k)
