"""glibc malloc settings for inference: keep freed memory for the next frame instead of unmapping it.

A frame of the nuScenes preset allocates tensors of tens to hundreds of MB. With glibc's defaults each
of them is a fresh `mmap` (the dynamic mmap threshold tops out at 32 MB) and is unmapped when freed, so
every frame pays the kernel for mapping and zero-filling the same memory again. `keep_freed_memory`
calls `mallopt` at run time, with the effect of `GLIBC_TUNABLES=glibc.malloc.mmap_max=0:
glibc.malloc.trim_threshold=2147483647:glibc.malloc.arena_max=1` but without restarting the process:

- M_MMAP_MAX = 0: large blocks come from the heap, not from their own mappings;
- M_TRIM_THRESHOLD = 2 GiB (the largest int mallopt takes): free memory at the top of the heap is kept;
- M_ARENA_MAX = 1: threads (the node's worker, the DataLoader) share the main heap, to which the first
  two apply (a thread's own arena is capped at 64 MB and falls back to mmap above that).

The process then keeps its peak working set mapped (RSS stays at the largest frame's, instead of going up
and down each frame). It changes nothing outside glibc (musl, macOS: `keep_freed_memory` returns None),
and `TACOCC_MALLOC=default` in the environment leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
M_ARENA_MAX = -8
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt's value is a C int
ENV_SWITCH = "TACOCC_MALLOC"


@dataclass(frozen=True)
class MallocStats:
    """From glibc's `mallinfo2`: bytes in the heap (`arena`) and in separately mapped blocks (`mmapped`)."""

    arena: int
    mmapped: int
    mmapped_blocks: int


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "mallinfo2") else None


def _mallopt_libc() -> ctypes.CDLL | None:
    """The C library with `mallopt` typed for calls; None off glibc or when TACOCC_MALLOC=default asks for defaults."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() == "default":
        return None
    libc = _libc()
    if libc is not None:
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return libc


def keep_freed_memory() -> str | None:
    """Apply the settings above to this process (idempotent); what was done, or None where nothing was.

    Returns a one-line description for logs, or None off glibc or with TACOCC_MALLOC=default.
    """
    libc = _mallopt_libc()
    if libc is None:
        return None
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES), (M_ARENA_MAX, 1))
    if not all(libc.mallopt(param, value) == 1 for param, value in settings):
        return None
    return "glibc malloc keeps freed memory for reuse (mmap_max=0, trim_threshold=2 GiB, arena_max=1)"


def return_large_blocks(threshold_bytes: int = 1 << 20) -> str | None:
    """Give every block of `threshold_bytes` or more its own mapping, unmapped when freed; None off glibc.

    For a process that receives messages rather than running the network (the occupancy node when its
    network runs in a child process). glibc's default threshold is dynamic: freeing a mapped block raises
    it to that block's size (up to 32 MiB), after which blocks of that size come from the heap, which
    keeps them once freed. One 24 MB PointCloud2 (refused, but deserialised by rclpy first) then leaves
    the heap 24 MB larger for good. A fixed threshold (setting it turns the dynamic one off) returns
    such blocks to the system as soon as they are freed. `TACOCC_MALLOC=default` leaves glibc's defaults.
    """
    libc = _mallopt_libc()
    if libc is None:
        return None
    if libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)) != 1:
        return None
    return f"glibc malloc maps blocks of {threshold_bytes >> 10} KiB or more and unmaps them when freed"


def malloc_stats() -> MallocStats | None:
    """Heap and mmapped bytes of the process (glibc only, else None): shows whether the settings took."""
    libc = _libc()
    if libc is None:
        return None
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return MallocStats(arena=int(info.arena), mmapped=int(info.hblkhd), mmapped_blocks=int(info.hblks))
