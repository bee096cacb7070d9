"""Batch normalisation with statistics over every process of a data-parallel group, on any device.

`torch.nn.SyncBatchNorm` only runs on GPU (torch 2.14 raises "SyncBatchNorm expected input tensor to be on
GPU ..." for CPU tensors), so CPU runs under gloo - the multi-process tests and CPU-only users - need
their own. `sync_batch_norm` is the plain formula: all-reduce per-channel sums for the mean, then sums of
squared deviations for the variance (two passes, as stable as single-process batch norm), through a
differentiable all-reduce (`_AllReduceSum`: the gradient of a sum over processes is the sum over processes
of the gradients) so that gradients flow across processes. torch's own differentiable all-reduce
(`torch.distributed.nn.functional.all_reduce`) is deprecated in favour of a private module.
On CUDA, `convert_sync_batchnorm` in `distributed.py` uses torch's fused version instead.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum of a tensor over the processes of a group, with the matching backward (a sum of gradients)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: dist.ProcessGroup) -> torch.Tensor:  # noqa: D102
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=ctx.group)
        return out, None


def sync_batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    momentum: float,
    eps: float,
    group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    """Training-mode batch norm whose statistics cover the batches of every process in `group`.

    Args:
        x: (B, C, ...) input; B may differ between processes.
        running_mean, running_var: (C,) buffers updated in place with `momentum` (unbiased variance), or None.
        weight, bias: (C,) affine parameters, or None.
        group: the process group; without an initialised process group this is ordinary batch norm.
    """
    if x.ndim < 2:
        raise ValueError(f"sync_batch_norm: expected (B, C, ...) input, got {tuple(x.shape)}")
    synced = dist.is_available() and dist.is_initialized()
    channels = x.shape[1]
    dims = [0, *range(2, x.ndim)]
    shape = (1, channels) + (1,) * (x.ndim - 2)
    xf = x.float()
    count = torch.full((1,), x.numel() // channels, dtype=torch.float32, device=x.device)
    sums = torch.cat([xf.sum(dims), count])
    if synced:
        sums = _AllReduceSum.apply(sums, group or dist.group.WORLD)
    n = sums[-1]
    mean = sums[:channels] / n
    centred = xf - mean.view(shape)
    squares = (centred * centred).sum(dims)
    if synced:
        squares = _AllReduceSum.apply(squares, group or dist.group.WORLD)
    var = squares / n
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            unbiased = var * (n / (n - 1).clamp(min=1))
            running_mean.mul_(1 - momentum).add_(mean.detach().to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_(unbiased.detach().to(running_var.dtype), alpha=momentum)
    out = centred * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out.to(x.dtype)


class SyncBatchNorm(_BatchNorm):
    """Drop-in for BatchNorm1d/2d/3d with cross-process statistics in training mode (see `sync_batch_norm`).

    Args:
        num_features, eps, momentum, affine, track_running_stats: as torch.nn.BatchNorm*d.
        group: process group to synchronise over (None: the default group).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.group = group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected (B, C, ...) input, got {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        use_batch_stats = self.training or not self.track_running_stats
        if not use_batch_stats:
            return F.batch_norm(
                input, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as torch's batch norm
                momentum = 1.0 / float(self.num_batches_tracked)
        update = self.training and self.track_running_stats
        return sync_batch_norm(
            input,
            self.running_mean if update else None,
            self.running_var if update else None,
            self.weight,
            self.bias,
            momentum,
            self.eps,
            self.group,
        )

    @classmethod
    def convert(cls, module: nn.Module, group: dist.ProcessGroup | None = None) -> nn.Module:
        """Replace every BatchNorm*d in `module` (recursively) by a SyncBatchNorm holding the same state."""
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            out = cls(
                module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, group
            )
            if module.affine:
                with torch.no_grad():
                    out.weight = module.weight
                    out.bias = module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, cls.convert(child, group))
        return out
