"""Data-parallel training under torchrun: process group, rank 0, sampler, SyncBatchNorm, DDP, reductions.

`tacocc train` runs unchanged as one process or under `torchrun --nproc_per_node=N`: torchrun sets RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them the run is a single process. The
backend is NCCL on CUDA and gloo on CPU. Each process reads `batch_size` samples per step, so the global
batch is batch_size x WORLD_SIZE; only rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from tacocc_core.train.run_state import capture_rng_state
from tacocc_core.train.sync_batchnorm import SyncBatchNorm

ModuleT = TypeVar("ModuleT", bound=nn.Module)

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job.

    Args:
        rank: global rank (0 .. world_size - 1).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on.
        backend: "nccl", "gloo", or None for a single process without a process group.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that logs, validates into files and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int_var(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except KeyError:
        raise ValueError(
            f"distributed run: environment variable {name} is not set (torchrun sets {', '.join(TORCHRUN_VARS)})"
        ) from None
    except ValueError:
        raise ValueError(f"distributed run: environment variable {name}={env[name]!r} is not an integer") from None


def init_distributed(env: Mapping[str, str] | None = None, cpu: bool = False, timeout_s: float = 1800.0) -> DistContext:
    """Join the process group described by torchrun's environment variables, or run alone without them.

    Args:
        env: the environment (default os.environ).
        cpu: compute on the CPU (gloo) even when CUDA is present.
        timeout_s: collective-operation timeout.
    """
    env = os.environ if env is None else env
    use_cuda = torch.cuda.is_available() and not cpu
    if "WORLD_SIZE" not in env or _int_var(env, "WORLD_SIZE") == 1:
        return DistContext(device=torch.device("cuda", 0) if use_cuda else torch.device("cpu"))
    world = _int_var(env, "WORLD_SIZE")
    rank = _int_var(env, "RANK")
    local_rank = _int_var(env, "LOCAL_RANK")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not env.get(name):
            raise ValueError(f"distributed run: environment variable {name} is not set (WORLD_SIZE={world})")
    if not 0 <= rank < world:
        raise ValueError(f"distributed run: RANK={rank} is outside 0..WORLD_SIZE-1={world - 1}")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"distributed run: LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPUs")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    init_method = f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    dist.init_process_group(
        backend, init_method=init_method, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
    )
    return DistContext(rank, world, local_rank, device, backend)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0, or a process outside any process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def make_sampler(
    dataset: Dataset, ctx: DistContext, shuffle: bool = True, seed: int = 0, drop_last: bool = True
) -> DistributedSampler:
    """The share of the dataset of this rank; call `set_epoch(epoch)` before each epoch.

    Also used for a single process (num_replicas 1), so that the order of samples - the same seeded
    permutation, dealt round-robin to the ranks - is the same whatever the number of processes.
    """
    return DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )


def convert_sync_batchnorm(model: ModuleT, ctx: DistContext) -> ModuleT:
    """Batch norm layers with statistics over all ranks: torch's SyncBatchNorm on CUDA, ours elsewhere.

    Unchanged for a single process. `model` is a network holding batch norms, not a batch norm itself: the
    same module comes back with its batch norm layers replaced.
    """
    if not ctx.distributed:
        return model
    if ctx.device.type == "cuda":
        return cast(ModuleT, nn.SyncBatchNorm.convert_sync_batchnorm(model))
    return cast(ModuleT, SyncBatchNorm.convert(model))


def wrap_ddp(model: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around a model already on ctx.device (unchanged for a single process)."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def all_reduce_sum(array: np.ndarray, ctx: DistContext) -> np.ndarray:
    """Element-wise sum over ranks of an integer or float array (e.g. a 17x17 confusion matrix)."""
    array = np.asarray(array)
    if not ctx.distributed:
        return array.copy()
    tensor = torch.from_numpy(array.copy()).to(ctx.device)  # a copy: all_reduce works in place
    dist.all_reduce(tensor)  # host-device synchronisation on the .cpu() below
    return tensor.cpu().numpy()


def all_reduce_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean over ranks of a tensor (loss terms for logging); returns a new tensor."""
    out = value.detach().clone()
    if ctx.distributed:
        dist.all_reduce(out)
        out /= ctx.world_size
    return out


def gather_rng_states(ctx: DistContext) -> list[dict[str, Any]]:
    """Every rank's `capture_rng_state()`, in rank order (for the checkpoint rank 0 writes)."""
    state = capture_rng_state()
    if not ctx.distributed:
        return [state]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, state)
    return out
