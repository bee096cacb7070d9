"""The node's threads: the executor that spins its callbacks and torch's intra-op pool for inference.

Why `SingleThreadedExecutor` by default: see the measurement in `occupancy_node`'s module docstring.
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
