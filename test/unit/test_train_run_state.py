import dataclasses
import errno
import random

import numpy as np
import pytest
import torch
from torch import nn

from tacocc_core.checkpoint import CheckpointError
from tacocc_core.config import load_preset
from tacocc_core.train.run_state import CheckpointManager, capture_rng_state, restore_rng_state
from tacocc_core.train.schedule import make_optimizer, make_scheduler


@pytest.fixture
def tiny():
    return load_preset("tiny")


def _model(width=8):
    return nn.Sequential(nn.Linear(4, width), nn.Dropout(0.3), nn.ReLU(), nn.Linear(width, 2))


def _parts(width=8):
    model = _model(width)
    opt = make_optimizer(model, lr=1e-2)
    sched = make_scheduler(opt, warmup_steps=2, total_steps=20, min_ratio=0.1)
    return model, opt, sched


def _train_step(model, opt, sched):
    """One step that draws from every RNG: Python, numpy (inputs), torch (dropout)."""
    noise = random.random()
    x = torch.from_numpy(np.random.standard_normal((6, 4)).astype(np.float32)) + noise
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_rng_round_trip():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    state = capture_rng_state()
    first = (random.random(), np.random.standard_normal(3), torch.rand(3))
    restore_rng_state(state)
    second = (random.random(), np.random.standard_normal(3), torch.rand(3))
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    torch.testing.assert_close(first[2], second[2])


def test_resume_continues_exactly(tmp_path, tiny):
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    model, opt, sched = _parts()
    manager = CheckpointManager(tmp_path / "run", tiny, train_config={"steps": 20})
    for _ in range(5):
        _train_step(model, opt, sched)
    manager.save(5, model, opt, sched, extra={"nan_guard": {"in_a_row": 0, "skipped": 1}})
    for _ in range(4):
        _train_step(model, opt, sched)
    expected = [p.detach().clone() for p in model.parameters()]

    # A fresh process-like start: other weights, other RNG state.
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    model2, opt2, sched2 = _parts()
    state = CheckpointManager(tmp_path / "run", tiny).resume(model2, opt2, sched2)
    assert state.step == 5 and state.extra == {"nan_guard": {"in_a_row": 0, "skipped": 1}}
    for _ in range(4):
        _train_step(model2, opt2, sched2)
    for a, b in zip(expected, model2.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_best_follows_the_metric_and_survives_later_saves(tmp_path, tiny):
    model, opt, sched = _parts()
    manager = CheckpointManager(tmp_path, tiny)
    assert manager.save(1, model, opt, sched, metric=0.2)
    _train_step(model, opt, sched)
    assert not manager.save(2, model, opt, sched, metric=0.1)
    assert not manager.save(3, model, opt, sched)
    assert not manager.save(4, model, opt, sched, metric=float("nan"))
    best = torch.load(manager.best_path, weights_only=True)
    latest = torch.load(manager.latest_path, weights_only=True)
    assert best["step"] == 1 and best["metric"] == 0.2
    assert latest["step"] == 4 and latest["best_metric"] == 0.2
    assert manager.save(5, model, opt, sched, metric=0.3)
    assert torch.load(manager.best_path, weights_only=True)["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "latest.pt"]
    # The best metric comes back on resume, so a worse later validation does not replace best.pt.
    resumed = CheckpointManager(tmp_path, tiny)
    resumed.resume(*_parts())
    assert resumed.best_metric == 0.3 and not resumed.is_better(0.25)
    lower = CheckpointManager(tmp_path / "loss", tiny, higher_is_better=False)
    assert lower.save(1, model, opt, sched, metric=2.0) and lower.save(2, model, opt, sched, metric=1.0)


def test_kept_snapshots_stay_as_they_were_when_latest_moves_on(tmp_path, tiny):
    model, opt, sched = _parts()
    manager = CheckpointManager(tmp_path, tiny)
    manager.save(2, model, opt, sched, keep=True)
    at_two = {k: v.clone() for k, v in model.state_dict().items()}
    _train_step(model, opt, sched)
    manager.save(3, model, opt, sched)
    manager.save(4, model, opt, sched, keep=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "step_000002.pt", "step_000004.pt"]
    kept = torch.load(manager.kept_path(2), weights_only=True)
    assert kept["step"] == 2
    for name, value in at_two.items():
        torch.testing.assert_close(kept["model"][name], value, rtol=0, atol=0)
    assert torch.load(manager.kept_path(4), weights_only=True)["step"] == 4


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, tiny, monkeypatch):
    model, opt, sched = _parts()
    manager = CheckpointManager(tmp_path, tiny)
    manager.save(3, model, opt, sched, metric=0.5)
    before = manager.latest_path.read_bytes()
    real_save = torch.save

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes of a checkpoint")  # some bytes reach the temp file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    _train_step(model, opt, sched)
    with pytest.raises(OSError, match="step 4.*No space left on device.*previous checkpoint files are intact") as info:
        manager.save(4, model, opt, sched, metric=0.9)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(torch, "save", real_save)
    assert manager.latest_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "latest.pt"]  # no temp file left
    assert manager.best_metric == 0.5
    assert CheckpointManager(tmp_path, tiny).resume(*_parts()).step == 3


def _snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def test_corrupt_checkpoint_is_refused_and_nothing_changes(tmp_path, tiny):
    model, opt, sched = _parts()
    manager = CheckpointManager(tmp_path, tiny)
    manager.save(2, model, opt, sched)
    data = manager.latest_path.read_bytes()
    manager.latest_path.write_bytes(data[: len(data) // 2])
    truncated = manager.latest_path.read_bytes()
    fresh, opt2, sched2 = _parts()
    before = _snapshot(fresh)
    with pytest.raises(CheckpointError, match=r"latest\.pt: not a readable checkpoint"):
        manager.resume(fresh, opt2, sched2)
    assert manager.latest_path.read_bytes() == truncated
    for a, b in zip(before, fresh.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        CheckpointManager(tmp_path / "empty", tiny).resume(fresh, opt2, sched2)


def test_mismatched_config_weights_and_optimizer_are_named(tmp_path, tiny):
    model, opt, sched = _parts()
    CheckpointManager(tmp_path, tiny).save(2, model, opt, sched)
    other = dataclasses.replace(tiny, fuser=dataclasses.replace(tiny.fuser, fixed_k=1))
    with pytest.raises(CheckpointError, match="differing keys: fuser.fixed_k"):
        CheckpointManager(tmp_path, other).resume(*_parts())
    wide, opt_w, sched_w = _parts(width=16)
    before = _snapshot(wide)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*0\.weight \(8, 4\) vs \(16, 4\)"):
        CheckpointManager(tmp_path, tiny).resume(wide, opt_w, sched_w)
    for a, b in zip(before, wide.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())
    model3, _, _ = _parts()
    single_group = torch.optim.AdamW(model3.parameters())
    with pytest.raises(CheckpointError, match="optimizer parameter groups differ"):
        CheckpointManager(tmp_path, tiny).resume(model3, single_group, make_scheduler(single_group, 0, 5))


def test_weights_only_file_is_not_resumable(tmp_path, tiny):
    from tacocc_core.checkpoint import save_checkpoint

    model, opt, sched = _parts()
    save_checkpoint(tmp_path / "latest.pt", model.state_dict(), tiny)
    with pytest.raises(CheckpointError, match="not a resumable checkpoint \\(no 'step' entry\\)"):
        CheckpointManager(tmp_path, tiny).resume(model, opt, sched)
