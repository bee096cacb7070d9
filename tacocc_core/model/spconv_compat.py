"""spconv on a machine without CUDA: the one place that works around spconv 2.3's CPU gaps.

spconv 2.3.x asks `torch.cuda.current_stream()` for a stream handle in its backward (and hash)
ops even for CPU tensors, which raises when CUDA is unavailable. Its CPU kernels ignore the handle,
so a function that returns 0 there makes CPU backward work (measured with spconv 2.3.8). The patch
is applied only when CUDA is unavailable, so GPU machines run spconv untouched.

The other known CPU problem, an assertion in eval-mode sparse convolution with bias (spconv#719),
is avoided by construction: every sparse conv in this package has bias=False and is followed by a norm.
"""

from __future__ import annotations

import torch


def _cpu_stream() -> int:
    return 0


def import_spconv():
    """Import `spconv.pytorch`, patched for CPU-only machines; returns the module."""
    import spconv.pytorch as spconv_pytorch
    from spconv.pytorch import cppcore, hash, ops

    if not torch.cuda.is_available():
        for module in (cppcore, ops, hash):
            if getattr(module, "get_current_stream", None) is not _cpu_stream:
                module.get_current_stream = _cpu_stream
    return spconv_pytorch
