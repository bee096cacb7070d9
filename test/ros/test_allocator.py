"""tacocc_core.allocator: measured in fresh processes, since mallopt changes the whole process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tacocc_core.allocator import malloc_stats

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(malloc_stats() is None, reason="glibc only (mallopt, mallinfo2)")

# Runs the `tacocc` console script's main in-process (a quick command), then allocates 256 MB from a
# worker thread, as the node's inference thread does, and reports glibc's counters while it is alive.
PROBE = """
import json, sys, threading
import numpy as np
from tacocc_ros.cli import main
from tacocc_core.allocator import malloc_stats
main(["labels"])
held = {}
def work():
    for _ in range(3):
        held["a"] = np.ones(256 << 20, dtype=np.uint8)
thread = threading.Thread(target=work)
thread.start()
thread.join()
stats = malloc_stats()
print(json.dumps({"mmapped": stats.mmapped, "arena": stats.arena}))
"""


def run_probes(*env_extras: dict[str, str]) -> list[dict]:
    """PROBE in one fresh process per environment, all at once (each spends seconds importing torch)."""
    probes = [
        subprocess.Popen(
            [sys.executable, "-c", PROBE],
            env={**os.environ, "PYTHONPATH": str(REPO), **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra in env_extras
    ]
    results = []
    for probe in probes:
        out, err = probe.communicate(timeout=120)
        assert probe.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_console_script_keeps_large_blocks_in_the_heap():
    kept, default = run_probes({}, {"TACOCC_MALLOC": "default"})
    assert default["mmapped"] >= 256 << 20  # glibc's default: the block is its own mapping
    assert kept["mmapped"] < 64 << 20 and kept["arena"] >= 256 << 20  # the setting reached the process


# A 24 MB block freed, then another one allocated (a refused 24 MB PointCloud2 after another): with glibc's
# dynamic threshold the second comes from the heap and stays there once freed.
RETURN_PROBE = """
import ctypes, json, sys
from tacocc_core.allocator import malloc_stats, return_large_blocks
if sys.argv[1] == "set":
    assert return_large_blocks() is not None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
libc.free(libc.malloc(24 << 20))
block = libc.malloc(24 << 20)
held = malloc_stats()
libc.free(block)
print(json.dumps({"mmapped_while_held": held.mmapped, "arena_after_free": malloc_stats().arena}))
"""


@pytest.mark.parametrize("setting", ["set", "default"])
def test_return_large_blocks_maps_each_large_block_and_returns_it(setting):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", RETURN_PROBE, setting], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    if setting == "set":
        assert stats["mmapped_while_held"] >= 24 << 20  # its own mapping, unmapped by free
        assert stats["arena_after_free"] < 16 << 20
    else:  # glibc's dynamic threshold: the second block came from the heap
        assert stats["mmapped_while_held"] < 24 << 20
