"""The node's threads: the executor that spins its callbacks and torch's intra-op pool for inference.

Why `SingleThreadedExecutor` by default: rclpy's `MultiThreadedExecutor` spins in its wait loop
(`wait_for_ready_callbacks`, `Future.done`) while a callback runs, holding the interpreter lock the
inference thread needs. Measured with `python -m benchmarks.speed.bench_executor` (`tacocc drive`: the real fixture
frame, LiDAR 20 Hz, six cameras 12 Hz, /odom 50 Hz, demo checkpoint, 35 s after 10 s warm-up, the
network in a thread of the node, Fast DDS defaults) on the project's 2-core machine while other jobs
kept its load average at 6.7-7.5:

    executor, torch threads          grids/s   end-to-end p50 / p99 ms   longest gap ms
    multi (2 threads), 2                1.88        532 / 2160                 2551
    single, 2                           2.84        390 /  663                 1961
    single, 1                           2.52        429 /  650                 3399

so `executor: single` with every core for torch is the default; `executor: multi` stays for comparison.
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
