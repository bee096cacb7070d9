"""tacocc_core.allocator: measured in fresh processes, since mallopt changes the whole process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tacocc_core.allocator import malloc_stats

REPO = Path(__file__).resolve().parent.parent
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


def run_probe(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_extra}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_console_script_keeps_large_blocks_in_the_heap():
    kept = run_probe({})
    default = run_probe({"TACOCC_MALLOC": "default"})
    assert default["mmapped"] >= 256 << 20  # glibc's default: the block is its own mapping
    assert kept["mmapped"] < 64 << 20 and kept["arena"] >= 256 << 20  # the setting reached the process


def test_node_process_applies_it_at_start():
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(os.getpid() % 100 + 1),
    }
    command = [sys.executable, "-m", "tacocc_ros.node.occupancy_node", "--ros-args", "-p", "model_config:=no_such"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1  # the bad preset ends it, after the allocator line
    assert "glibc malloc keeps freed memory for reuse" in done.stdout + done.stderr
