"""spconv on the CPU: the one place that works around spconv 2.3's CPU gaps.

1. spconv 2.3.x asks `torch.cuda.current_stream()` for a stream handle in its backward (and hash)
   ops even for CPU tensors, which raises when CUDA is unavailable. Its CPU kernels ignore the
   handle, so a function that returns 0 there makes CPU backward work (spconv 2.3.8).
   Patched only when CUDA is unavailable.
2. spconv 2.3.8's CPU ops give wrong results at random when torch runs more than one intra-op
   thread: a SubMConv3d over 2,232 voxels on a 48x48x8 grid had 30-110 output rows that differed
   from a dense conv3d of the same weights, and from run to run; with one thread every row matched
   (measured on this project's CPU machines). The ops that `spconv.pytorch.functional` calls through
   `spconv.pytorch.ops` (indice pairs, gather-gemm-scatter conv, their backward, pooling) therefore
   run with one torch thread whenever their input tensors are on the CPU. CPU spconv is
   single-threaded for speed purposes anyway (docs/design/dependencies.md); CUDA tensors are untouched.
3. An assertion in eval-mode sparse convolution with bias on the CPU (spconv#719) is avoided by
   construction: every sparse conv in this package has bias=False and is followed by a norm.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

_SINGLE_THREAD_OPS = (
    "get_indice_pairs",
    "get_indice_pairs_implicit_gemm",
    "indice_conv",
    "indice_conv_backward",
    "implicit_gemm",
    "implicit_gemm_backward",
    "indice_maxpool",
    "indice_maxpool_backward",
    "indice_maxpool_implicit_gemm",
    "indice_maxpool_implicit_gemm_backward",
    "indice_avgpool_implicit_gemm",
    "indice_avgpool_implicit_gemm_backward",
)


def _cpu_stream() -> int:
    return 0


def _on_cpu(args: tuple, kwargs: dict) -> bool:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device.type == "cpu"
    return False


def single_threaded_on_cpu(fn: Callable) -> Callable:
    """`fn` run with one torch intra-op thread when its first tensor argument is on the CPU."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads == 1 or not _on_cpu(args, kwargs):
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    wrapper.single_threaded_on_cpu = True  # type: ignore[attr-defined]  # a marker on the function, read by getattr
    return wrapper


def import_spconv():
    """Import `spconv.pytorch` with the CPU workarounds above applied (once); returns the module."""
    import spconv.pytorch as spconv_pytorch
    from spconv.pytorch import cppcore, hash, ops

    if not torch.cuda.is_available():
        for module in (cppcore, ops, hash):
            if getattr(module, "get_current_stream", None) is not _cpu_stream:
                module.get_current_stream = _cpu_stream
    for name in _SINGLE_THREAD_OPS:
        fn = getattr(ops, name, None)
        if fn is not None and not getattr(fn, "single_threaded_on_cpu", False):
            setattr(ops, name, single_threaded_on_cpu(fn))
    return spconv_pytorch
