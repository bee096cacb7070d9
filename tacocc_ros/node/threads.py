"""The node's threads: the executor that spins its callbacks and torch's intra-op pool for inference.

Why `SingleThreadedExecutor` by default: rclpy's `MultiThreadedExecutor` spins in its wait loop
(`wait_for_ready_callbacks`, `Future.done`) while a callback runs, holding the interpreter lock the
inference thread needs; on two cores it starved inference (docs/design/node.md). So
`executor: single` with every core for torch is the default; `executor: multi` stays for comparison.
"""

from __future__ import annotations

import os

from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor


def set_inference_threads(threads: int) -> int:
    """Give torch's intra-op pool `threads` threads (0: every core this process may use); the number set."""
    import torch

    count = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    return count


def make_executor(kind: str) -> Executor:
    """`single`: one thread, blocking in rcl_wait; `multi`: rclpy's MultiThreadedExecutor with 2 threads."""
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=2)
    return SingleThreadedExecutor()
