import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tacocc_core.metrics import confusion_matrix
from tacocc_core.train.distributed import (
    DistContext,
    all_reduce_mean,
    all_reduce_sum,
    convert_sync_batchnorm,
    gather_rng_states,
    init_distributed,
    is_main_process,
    make_sampler,
    shutdown,
    wrap_ddp,
)
from tacocc_core.train.schedule import make_optimizer
from tacocc_core.train.sync_batchnorm import SyncBatchNorm

WORLD = 2
PER_RANK_BATCH = 2
EPOCHS = 2


def _dataset():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(16, 2, 6, 6, 4, generator=gen)
    y = torch.randint(0, 3, (16, 6, 6, 4), generator=gen)
    return TensorDataset(x, y)


def _model():
    torch.manual_seed(11)
    return nn.Sequential(nn.Conv3d(2, 4, 3, padding=1, bias=False), nn.BatchNorm3d(4), nn.ReLU(), nn.Conv3d(4, 3, 1))


def _train(model, ctx, batch_size):
    """Train EPOCHS over the sampler's share; returns the confusion matrix of the final model on its share."""
    opt = make_optimizer(model, lr=1e-2)
    dataset = _dataset()
    sampler = make_sampler(dataset, ctx, shuffle=True, seed=5)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    eval_loader = DataLoader(dataset, batch_size=4, sampler=make_sampler(dataset, ctx, shuffle=False))
    matrix = np.zeros((17, 17), np.int64)
    with torch.no_grad():
        for x, y in eval_loader:
            matrix += confusion_matrix(model(x).argmax(1), y)
    return matrix, all_reduce_mean(loss, ctx)


def _worker(rank, port, out_dir):
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        GLOO_SOCKET_IFNAME="lo",
    )
    torch.set_num_threads(1)
    ctx = init_distributed(cpu=True, timeout_s=120)
    try:
        model = wrap_ddp(convert_sync_batchnorm(_model(), ctx), ctx)
        local, mean_loss = _train(model, ctx, PER_RANK_BATCH)
        total = all_reduce_sum(local, ctx)
        rng = gather_rng_states(ctx)
        torch.save(
            {
                "state": model.module.state_dict(),
                "total": torch.from_numpy(total),
                "local": torch.from_numpy(local),
                "mean_loss": mean_loss,
                "rng_ranks": len(rng),
                "sync_bn": isinstance(model.module[1], SyncBatchNorm),
                "main": is_main_process(),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        shutdown(ctx)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two spawned processes importing torch: 5-7 s on 2 shared cores
@pytest.mark.timeout(180)
def test_two_gloo_processes_equal_one_process_with_the_doubled_batch(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    torch.set_num_threads(1)
    reference = _model()  # plain BatchNorm3d on the doubled batch: the obviously correct twin
    expected_matrix, _ = _train(reference, DistContext(), PER_RANK_BATCH * WORLD)

    assert all(r["sync_bn"] for r in results) and [r["main"] for r in results] == [True, False]
    for name, value in reference.state_dict().items():
        for r in results:
            torch.testing.assert_close(r["state"][name], value, rtol=1e-4, atol=1e-5, msg=f"{name}")
    for r in results:
        np.testing.assert_array_equal(r["total"].numpy(), expected_matrix)
        assert r["rng_ranks"] == WORLD
    assert not np.array_equal(results[0]["local"].numpy(), expected_matrix)  # each rank saw only its half
    torch.testing.assert_close(results[0]["mean_loss"], results[1]["mean_loss"])


def test_single_process_context_from_an_empty_environment():
    ctx = init_distributed(env={}, cpu=True)
    assert ctx == DistContext() and ctx.is_main and not ctx.distributed
    model = nn.Sequential(nn.BatchNorm1d(2))
    assert convert_sync_batchnorm(model, ctx) is model and wrap_ddp(model, ctx) is model
    assert all_reduce_sum(np.arange(3), ctx).tolist() == [0, 1, 2]
    assert len(gather_rng_states(ctx)) == 1 and is_main_process()
    assert init_distributed(env={"WORLD_SIZE": "1"}, cpu=True).world_size == 1


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "x", "MASTER_PORT": "1"}, "RANK is not set"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_PORT": "1"}, "MASTER_ADDR is not set"),
        ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "x", "MASTER_PORT": "1"}, "RANK=2"),
    ],
)
def test_bad_torchrun_environment_is_named(env, needle):
    with pytest.raises(ValueError, match=needle):
        init_distributed(env=env, cpu=True)


def test_sampler_deals_one_permutation_to_the_ranks():
    dataset = list(range(10))
    single = list(make_sampler(dataset, DistContext(), seed=3))
    shards = [list(make_sampler(dataset, DistContext(rank=r, world_size=2), seed=3)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(single)
    assert shards[0] == single[0::2] and shards[1] == single[1::2]
