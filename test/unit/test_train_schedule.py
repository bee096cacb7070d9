import math

import pytest
import torch
from torch import nn

from tacocc_core.train.schedule import lr_at, make_optimizer, make_scheduler, parameter_groups


def test_warmup_is_linear_and_reaches_the_peak():
    assert lr_at(0, 1e-3, 10, 100) == pytest.approx(1e-4)
    assert lr_at(4, 1e-3, 10, 100) == pytest.approx(5e-4)
    assert lr_at(9, 1e-3, 10, 100) == pytest.approx(1e-3)
    assert lr_at(10, 1e-3, 10, 100) == pytest.approx(1e-3)  # cosine starts at the peak


def test_cosine_reaches_the_floor_and_stays():
    base, floor = 2e-4, 0.1
    assert lr_at(55, base, 10, 100, floor) == pytest.approx(base * (floor + 0.5 * (1 - floor)))  # halfway
    assert lr_at(100, base, 10, 100, floor) == pytest.approx(base * floor)
    assert lr_at(500, base, 10, 100, floor) == pytest.approx(base * floor)
    values = [lr_at(s, base, 10, 100, floor) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_no_warmup():
    assert lr_at(0, 1.0, 0, 4) == 1.0
    assert lr_at(2, 1.0, 0, 4) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(step=-1, base_lr=1.0, warmup_steps=0, total_steps=5),
        dict(step=0, base_lr=0.0, warmup_steps=0, total_steps=5),
        dict(step=0, base_lr=1.0, warmup_steps=5, total_steps=5),
        dict(step=0, base_lr=1.0, warmup_steps=0, total_steps=5, min_ratio=1.5),
    ],
)
def test_bad_arguments_are_named(kwargs):
    with pytest.raises(ValueError, match="lr_at"):
        lr_at(**kwargs)


def test_scheduler_follows_lr_at_and_survives_a_state_round_trip():
    model = nn.Linear(2, 2)
    opt = make_optimizer(model, lr=1e-3)
    sched = make_scheduler(opt, warmup_steps=3, total_steps=20, min_ratio=0.05)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, 1e-3, 3, 20, 0.05) for s in range(8)])
    # A fresh optimiser + scheduler restored from state dicts continues at step 8.
    opt2 = make_optimizer(nn.Linear(2, 2), lr=1e-3)
    sched2 = make_scheduler(opt2, warmup_steps=3, total_steps=20, min_ratio=0.05)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(8, 1e-3, 3, 20, 0.05))
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(9, 1e-3, 3, 20, 0.05))


def test_scheduler_rejects_bad_schedule_at_construction():
    with pytest.raises(ValueError, match="warmup_steps"):
        make_scheduler(make_optimizer(nn.Linear(2, 2)), warmup_steps=10, total_steps=10)


def test_no_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Conv3d(2, 4, 3), nn.BatchNorm3d(4), nn.Linear(4, 3))
    model.register_parameter("beta", nn.Parameter(torch.tensor(1.0)))
    frozen = nn.Parameter(torch.ones(5, 5), requires_grad=False)
    model.register_parameter("frozen", frozen)
    groups = parameter_groups(model, 0.01)
    decayed = {id(p) for p in groups[0]["params"]}
    undecayed = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[0].weight), id(model[2].weight)}
    assert undecayed == {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias), id(model.beta)}
    assert id(frozen) not in decayed | undecayed


def test_optimizer_is_adamw_with_paper_defaults_and_decay_acts_only_on_weights():
    model = nn.Linear(3, 3)
    opt = make_optimizer(model)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 1e-4
    # Zero gradients: Adam's update vanishes, only decoupled weight decay moves parameters.
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(model.weight.detach(), w0 * (1 - 1e-4 * 0.01))
    torch.testing.assert_close(model.bias.detach(), b0)
    assert not math.isnan(model.weight.sum().item())


def test_model_without_trainable_parameters_is_refused():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer(model)
