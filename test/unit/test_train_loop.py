import dataclasses
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from tacocc_core.checkpoint import CheckpointError, save_checkpoint
from tacocc_core.config import load_preset
from tacocc_core.train.distributed import DistContext
from tacocc_core.train.loop import RunSpec, backward_and_step, train
from tacocc_core.train.nan_guard import NanGuard, NonFiniteLossError
from tacocc_core.train.objective import ObjectiveOutput
from tacocc_core.train.schedule import make_optimizer, make_scheduler
from tacocc_core.train.train_config import TrainConfig


def _config():
    config = load_preset("tiny")
    return dataclasses.replace(
        config,
        fuser=dataclasses.replace(config.fuser, mode="fixed", fixed_k=1),
        temporal=dataclasses.replace(config.temporal, window=2),
    )


def _spec(data, run_dir, steps=4, **changes):
    tc = TrainConfig(
        steps=steps,
        warmup_steps=1,
        lr=1e-3,
        renderer=False,
        val_every=steps,
        ckpt_every=2,
        log_every=1,
        image_every=2,
        num_workers=0,
        bf16=False,
    )
    return RunSpec(config=_config(), train_config=tc, data_root=data, run_dir=run_dir, device="cpu", **changes)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# --- the step function on a toy objective (fast) -----------------------------------------------------


def _toy(loss_scale=1.0):
    torch.manual_seed(0)
    module = nn.Linear(3, 1)
    opt = make_optimizer(module, lr=0.1)
    sched = make_scheduler(opt, 0, 10)
    out = ObjectiveOutput(total=module(torch.ones(1, 3)).sum() * loss_scale)
    return module, opt, sched, out


def test_a_nonfinite_loss_skips_the_step_and_stops_the_run_after_n_in_a_row():
    tc = TrainConfig(steps=10, warmup_steps=0, max_nan_in_a_row=2)
    guard = NanGuard(tc.max_nan_in_a_row)
    module, opt, sched, out = _toy(loss_scale=math.nan)
    before = module.weight.detach().clone()
    terms, stepped = backward_and_step(out, module, opt, sched, guard, tc, DistContext(), step=0)
    assert stepped is False and guard.skipped == 1 and math.isnan(terms["loss"])
    assert torch.equal(module.weight, before) and sched.last_epoch == 0  # neither optimiser nor schedule moved
    module, opt, sched, out = _toy()
    assert backward_and_step(out, module, opt, sched, guard, tc, DistContext(), step=1)[1] is True
    assert guard.in_a_row == 0 and not torch.equal(module.weight, before)
    for step in (2, 3):
        module, opt, sched, out = _toy(loss_scale=math.inf)
        if step == 2:
            backward_and_step(out, module, opt, sched, guard, tc, DistContext(), step=step)
        else:
            with pytest.raises(NonFiniteLossError, match="2 steps in a row, the last at step 3"):
                backward_and_step(out, module, opt, sched, guard, tc, DistContext(), step=step)


def test_a_window_with_nothing_to_learn_is_skipped_without_counting_as_nonfinite():
    tc = TrainConfig(steps=10, warmup_steps=0)
    guard = NanGuard(1)
    module, opt, sched, out = _toy()
    out.learnable = False
    before = module.weight.detach().clone()
    _, stepped = backward_and_step(out, module, opt, sched, guard, tc, DistContext(), step=0)
    assert stepped is None and guard.skipped == 0 and torch.equal(module.weight, before)


# --- whole runs on the generated dataset ---------------------------------------------------------------


def test_existing_run_needs_resume_and_a_corrupt_checkpoint_is_refused_untouched(synthetic_dataset, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="pass --resume"):
        train(_spec(synthetic_dataset, run))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        train(_spec(synthetic_dataset, run, resume=True))
    assert (run / "latest.pt").read_bytes() == b"not a checkpoint"
    other = dataclasses.replace(load_preset("tiny"), name="other")
    other = dataclasses.replace(other, head=dataclasses.replace(other.head, channels=8))
    save_checkpoint(run / "latest.pt", {}, other, step=1)
    with pytest.raises(CheckpointError, match="head.channels"):
        train(_spec(synthetic_dataset, run, resume=True))


@pytest.mark.slow  # three short training runs of the tiny network: 30-60 s on 2 shared cores
@pytest.mark.timeout(600)
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(synthetic_dataset, tmp_path):
    keeping = _spec(synthetic_dataset, tmp_path / "a")
    straight = train(dataclasses.replace(keeping, train_config=dataclasses.replace(keeping.train_config, keep_every=2)))
    first = train(_spec(synthetic_dataset, tmp_path / "b", stop_at_step=2))
    assert first.step == 2 and not (tmp_path / "b" / "best.pt").exists()
    torch.save(_weights(tmp_path / "b" / "latest.pt"), tmp_path / "b_at_step_2.pt")
    resumed = train(_spec(synthetic_dataset, tmp_path / "b", resume=True))
    assert straight.step == resumed.step == 4
    # The snapshot kept at step 2 of the straight run is the stopped run's checkpoint of step 2.
    kept, stopped = _weights(tmp_path / "a" / "step_000002.pt"), torch.load(tmp_path / "b_at_step_2.pt")
    for name, value in stopped.items():
        torch.testing.assert_close(kept[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert (tmp_path / "a" / "step_000004.pt").is_file()
    a, b = _weights(tmp_path / "a" / "latest.pt"), _weights(tmp_path / "b" / "latest.pt")
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert straight.validations[-1]["miou"] == pytest.approx(resumed.validations[-1]["miou"])
    assert (tmp_path / "a" / "best.pt").is_file() and any((tmp_path / "a" / "tb").iterdir())
    assert all(math.isfinite(v) for v in straight.last_terms.values())


def _cli(data, out, steps, extra=()):
    return [
        sys.executable, "-m", "tacocc_core.cli", "train", "--config", "tiny", "--data", str(data), "--out", str(out),
        "--device", "cpu", "--set", "model.fuser.mode=fixed", "--set", "model.temporal.window=2",
        "--set", f"train.steps={steps}", "--set", "train.warmup_steps=1", "--set", "train.renderer=false",
        "--set", "train.ckpt_every=1", "--set", f"train.val_every={steps}", "--set", "train.num_workers=0",
        *extra,
    ]  # fmt: skip


@pytest.mark.slow  # three training processes (torch import each): about a minute on 2 shared cores
@pytest.mark.timeout(900)
def test_kill_9_after_a_checkpoint_then_resume_matches_an_uninterrupted_run(synthetic_dataset, tmp_path, repo_root):
    steps = 5
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)}
    subprocess.run(_cli(synthetic_dataset, tmp_path / "a", steps), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_cli(synthetic_dataset, tmp_path / "b", steps), env=env, stderr=subprocess.DEVNULL)
    latest = tmp_path / "b" / "latest.pt"
    deadline = time.monotonic() + 600
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(latest, map_location="cpu", weights_only=True)["step"]
    assert 1 <= killed_at < steps, "the run ended before it could be killed"
    subprocess.run(
        _cli(synthetic_dataset, tmp_path / "b", steps, ["--resume"]), check=True, env=env, capture_output=True
    )
    a, b = _weights(tmp_path / "a" / "latest.pt"), _weights(latest)
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-5, atol=1e-6, msg=name)
