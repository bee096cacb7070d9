import pytest
import torch

from tacocc_core.train.nan_guard import NanGuard, NonFiniteLossError


def test_finite_values_pass_and_reset_the_run():
    guard = NanGuard(3)
    assert guard.check(torch.tensor(1.5), 0)
    assert not guard.check(torch.tensor(float("nan")), 1)
    assert not guard.check(float("inf"), 2)
    assert guard.in_a_row == 2
    assert guard.check(0.25, 3)
    assert guard.in_a_row == 0 and guard.skipped == 2


def test_stops_after_n_in_a_row_with_a_message():
    guard = NanGuard(2)
    assert not guard.check(torch.tensor(float("nan")), 10)
    with pytest.raises(NonFiniteLossError, match=r"2 steps in a row, the last at step 11.*max_nan_in_a_row=2"):
        guard.check(torch.tensor(float("-inf")), 11, what="loss")


def test_bf16_scalar_and_state_round_trip():
    guard = NanGuard(5)
    guard.check(torch.tensor(float("nan"), dtype=torch.bfloat16), 0)
    other = NanGuard(5)
    other.load_state_dict(guard.state_dict())
    assert other.state_dict() == {"in_a_row": 1, "skipped": 1}


def test_a_skipped_step_leaves_the_weights_alone():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = NanGuard(3)
    before = model.weight.detach().clone()
    x = torch.tensor([[float("nan"), 1.0]])
    loss = model(x).sum()
    if guard.check(loss, 0):
        loss.backward()
        opt.step()
    torch.testing.assert_close(model.weight.detach(), before)
    assert guard.skipped == 1


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="max_in_a_row"):
        NanGuard(0)
