"""Numpy arrays handed between two processes through named shared memory, without pickling their bytes.

The writing side owns the blocks: `SharedArrayWriter.write(key, array)` copies `array` into the block of
`key` (a new, larger block replaces it when the array does not fit; the old one is unlinked) and returns
an `ArrayRef` (block name, shape, dtype) small enough to send through a pipe. The reading side
`SharedArrayReader.view(ref)` maps the named block (once per name) and returns an array viewing it.

The two sides must take turns (request, then reply): nothing here locks. `SharedArrayWriter.close()`
unlinks every block it made; `SharedArrayReader.close()` unmaps what it mapped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

MIN_BLOCK_BYTES = 1 << 16


@dataclass(frozen=True)
class ArrayRef:
    """Where an array lies: shared memory block `name`, from byte 0, C order."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class SharedArrayWriter:
    """Owns one growing shared memory block per key.

    Args:
        reserve: optional {key: bytes} to allocate up front (pages are only backed once written).
    """

    def __init__(self, reserve: dict[str, int] | None = None) -> None:
        self._blocks: dict[str, shared_memory.SharedMemory] = {}
        for key, size in (reserve or {}).items():
            self._block(key, size)

    def _block(self, key: str, nbytes: int) -> shared_memory.SharedMemory:
        block = self._blocks.get(key)
        if block is None or block.size < nbytes:
            if block is not None:
                block.close()
                block.unlink()
            size = max(MIN_BLOCK_BYTES, nbytes + nbytes // 4)  # headroom: a slowly growing array reallocates rarely
            block = shared_memory.SharedMemory(create=True, size=size)
            self._blocks[key] = block
        return block

    def write(self, key: str, array: np.ndarray) -> ArrayRef:
        """Copy `array` into the block of `key`; the reference to send to the reader."""
        array = np.asarray(array)
        block = self._block(key, array.nbytes)
        view: np.ndarray = np.ndarray(array.shape, dtype=array.dtype, buffer=block.buf)
        view[...] = array
        return ArrayRef(block.name, tuple(int(s) for s in array.shape), array.dtype.str)

    def reserve(self, key: str, shape: tuple[int, ...], dtype: str) -> ArrayRef:
        """A block for the reader to write an array of `shape` into (a reply); its reference."""
        ref = ArrayRef("", tuple(shape), np.dtype(dtype).str)
        return ArrayRef(self._block(key, ref.nbytes).name, ref.shape, ref.dtype)

    def view(self, ref: ArrayRef) -> np.ndarray:
        """The array at `ref` in a block of this writer (what the reader wrote there)."""
        for block in self._blocks.values():
            if block.name == ref.name:
                return np.ndarray(ref.shape, dtype=np.dtype(ref.dtype), buffer=block.buf)
        raise KeyError(f"no shared block named {ref.name!r}")

    def close(self) -> None:
        for block in self._blocks.values():
            block.close()
            block.unlink()
        self._blocks.clear()


class SharedArrayReader:
    """Maps the writer's blocks by name as references arrive; unmaps the ones the writer replaced."""

    def __init__(self) -> None:
        self._blocks: dict[str, shared_memory.SharedMemory] = {}

    def view(self, ref: ArrayRef) -> np.ndarray:
        """An array viewing the block of `ref` (valid until the writer writes that key again)."""
        block = self._blocks.get(ref.name)
        if block is None:
            block = self._blocks[ref.name] = _attach(ref.name)
        if ref.nbytes > block.size:
            raise ValueError(f"shared block {ref.name} holds {block.size} bytes, {ref} needs {ref.nbytes}")
        return np.ndarray(ref.shape, dtype=np.dtype(ref.dtype), buffer=block.buf)

    def keep_only(self, names: set[str]) -> None:
        """Unmap blocks not in `names` (the writer replaced them)."""
        for name in [n for n in self._blocks if n not in names]:
            _close_quietly(self._blocks.pop(name))

    def close(self) -> None:
        for block in self._blocks.values():
            _close_quietly(block)
        self._blocks.clear()


def _attach(name: str) -> shared_memory.SharedMemory:
    """Map an existing block without taking ownership of it (the writer unlinks it).

    Python before 3.13 has no `track=False` and registers the block with the resource tracker again; a
    process spawned by the writer shares the writer's tracker, where the name is already registered (a
    set: no second entry), so the writer's unlink still withdraws it and nothing is unlinked twice.
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    return shared_memory.SharedMemory(name=name)


def _close_quietly(block: shared_memory.SharedMemory) -> None:
    try:
        block.close()
    except BufferError:  # an array still views it: the mapping goes when that array does
        pass
