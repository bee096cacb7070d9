import math
import os
import socket
import subprocess
import sys

import pytest
import torch

from tacocc_core.train.schedule import lr_at

LR, WARMUP, STEPS = 1e-3, 1, 2
BETA1, BETA2 = 0.9, 0.999  # torch.optim.AdamW's defaults, which make_optimizer keeps
ROUNDING = 1e-6  # float32 rounding of weights of order 1 over a few operations, with a wide margin


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(data, out, batch):
    return [
        "-m", "tacocc_core.cli", "train", "--config", "tiny", "--data", str(data), "--out", str(out),
        "--device", "cpu", "--set", "model.fuser.mode=fixed", "--set", "model.temporal.window=2",
        "--set", f"train.steps={STEPS}", "--set", f"train.warmup_steps={WARMUP}", "--set", "train.renderer=false",
        "--set", f"train.batch_size={batch}", "--set", f"train.val_every={STEPS}", "--set", "train.num_workers=0",
        "--set", f"train.lr={LR}", "--set", "train.keep_every=1",
    ]  # fmt: skip


def adam_step_bound(t: int) -> float:
    """The largest |m_hat / (sqrt(v_hat) + eps)| of AdamW's t-th step (t = 1, 2) over all gradient histories.

    Step 1: m_hat = g1 and v_hat = g1^2, so the ratio is |g1| / (|g1| + eps) < 1. Step 2: m_hat =
    (b1 g1 + g2) / (1 + b1) and v_hat = (b2 g1^2 + g2^2) / (1 + b2); by Cauchy-Schwarz on the vectors
    (b1 / sqrt(b2), 1) and (sqrt(b2) g1, g2), |b1 g1 + g2| <= sqrt(1 + b1^2 / b2) sqrt(b2 g1^2 + g2^2), so
    the ratio is at most sqrt(1 + b2) / (1 + b1) * sqrt(1 + b1^2 / b2) (1.0014 for the defaults). Gradient
    clipping only scales g and changes neither bound; eps only lowers the ratio.
    """
    if t == 1:
        return 1.0
    if t == 2:
        return math.sqrt(1 + BETA2) / (1 + BETA1) * math.sqrt(1 + BETA1**2 / BETA2)
    raise ValueError(f"adam_step_bound: derived for steps 1 and 2, got {t}")


def weight_gap_bound(steps: int) -> float:
    """A bound on |w_ddp - w_one| per weight after `steps` AdamW steps from the same weights, any gradients.

    Each step is w <- (1 - lr wd) w - lr r with |r| <= adam_step_bound(t); the decay factor is the same in
    both runs and at most 1, so the gap grows by at most lr (|r_ddp| + |r_one|) <= 2 lr adam_step_bound(t)
    per step, whatever the gradients (rounding-level gradients flip the sign of r: batch norm makes many).
    """
    return sum(2 * lr_at(t - 1, LR, WARMUP, STEPS) * adam_step_bound(t) for t in range(1, steps + 1)) + ROUNDING


@pytest.mark.slow  # torchrun with two gloo processes + one single process, each training the tiny network
@pytest.mark.timeout(900)
def test_torchrun_two_processes_equal_one_process_with_the_doubled_batch(synthetic_dataset, tmp_path, repo_root):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root), "GLOO_SOCKET_IFNAME": "lo"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    ddp = subprocess.run(
        torchrun + _args(synthetic_dataset, tmp_path / "ddp", 1), env=env, capture_output=True, text=True
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, *_args(synthetic_dataset, tmp_path / "one", 2)], env=env, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr[-3000:]
    assert ddp.stdout.count('"seconds"') == 1  # only rank 0 reports
    a = torch.load(tmp_path / "ddp" / "latest.pt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "one" / "latest.pt", map_location="cpu", weights_only=True)
    assert len(a["rng"]) == 2 and len(b["rng"]) == 1  # every rank's RNG is in the DDP checkpoint
    assert len(list((tmp_path / "ddp" / "tb").iterdir())) == 1  # rank 0 logs alone
    # The first step starts from the same weights (DDP broadcasts rank 0's): loss and the norm of the
    # averaged gradient must agree to rounding. This checks the data split, per-frame loss means, the
    # synchronised batch norm forward and backward, and the gradient averaging.
    ddp_first, one_first = _first_step(tmp_path / "ddp" / "tb"), _first_step(tmp_path / "one" / "tb")
    for name, rel in (("loss", 1e-4), ("occ", 1e-4), ("grad_norm", 1e-3)):
        assert ddp_first[name] == pytest.approx(one_first[name], rel=rel), name
    # The weights cannot be compared to rounding: Adam's first update is lr * g / (|g| + eps), so a
    # gradient element at rounding level moves its weight by up to lr either way. They are compared with
    # the bound of that, derived above for any gradients; what has no such freedom is compared exactly.
    for step in range(1, STEPS + 1):
        ddp_step = torch.load(tmp_path / "ddp" / f"step_{step:06d}.pt", map_location="cpu", weights_only=True)
        one_step = torch.load(tmp_path / "one" / f"step_{step:06d}.pt", map_location="cpu", weights_only=True)
        for group in (*ddp_step["optimizer"]["param_groups"], *one_step["optimizer"]["param_groups"]):
            assert (group["betas"], group["amsgrad"], group["initial_lr"]) == ((BETA1, BETA2), False, LR)
        bound = weight_gap_bound(step)
        for name, value in one_step["model"].items():
            other = ddp_step["model"][name]
            if name.endswith("num_batches_tracked"):
                assert torch.equal(other, value), name
            elif name.endswith(("running_mean", "running_var")):
                if step == 1:  # the statistics of the first forward: the same weights on the same frames
                    torch.testing.assert_close(other, value, rtol=1e-5, atol=1e-6, msg=f"step 1 {name}")
            else:
                gap = (other - value).abs().max().item()
                assert gap <= bound, f"step {step} {name}: |ddp - one| {gap:.3g} > bound {bound:.3g}"
    # Validation under two processes (scenes dealt to the ranks, confusion matrices summed) scores the
    # DDP weights exactly as one process scoring the same weights does.
    assert a["metric"] == pytest.approx(_miou_in_one_process(tmp_path / "ddp" / "latest.pt", synthetic_dataset))


def _first_step(tb_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir))
    events.Reload()
    return {name: events.Scalars(f"train/{name}")[0].value for name in ("loss", "occ", "grad_norm")}


def _miou_in_one_process(checkpoint, data):
    from tacocc_core.data.nuscenes_reader import NuScenesReader, ReaderOptions
    from tacocc_core.predictor import Predictor, PredictorOptions
    from tacocc_core.train.evaluation import evaluate_streams, split_streams

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the training processes (OMP_NUM_THREADS=1): the same sums, the same argmax
    try:
        predictor = Predictor.from_checkpoint(checkpoint, options=PredictorOptions(device="cpu", timings=False))
        reader = NuScenesReader.open(data, "v1.0-mini", predictor.config, ReaderOptions(labels="surroundocc"))
        result = evaluate_streams(predictor, reader, split_streams(reader, "val"))
    finally:
        torch.set_num_threads(threads)
    return result.evaluator.results()["all"].miou
