"""Wall-clock timing: per network stage, honest on CUDA; medians of repeated calls for the benchmarks.

`StageTimer` synchronises CUDA before reading the clock; `median_wall_cpu_ms` times CPU-side calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


class StageTimer:
    """Collects milliseconds per named stage of one frame.

    Args:
        device: the device the stages run on; on CUDA the timer synchronises at each boundary (a host-device
            sync point: it costs a little, so the Predictor enables it only when timings are asked for).
        enabled: False makes `stage` a no-op.
    """

    def __init__(self, device: torch.device | str = "cpu", enabled: bool = True) -> None:
        self.device = torch.device(device)
        self.enabled = enabled
        self.ms: dict[str, float] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1e3


NULL_TIMER = StageTimer(enabled=False)


def median_wall_cpu_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and process-CPU milliseconds of `fn()` over `repeats` calls after one warm-up call.

    CPU time adds up all threads; on a machine shared with other jobs the wall time grows with the load while
    the CPU time barely does.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)
