"""Per-stage wall-clock timing that is honest on CUDA (synchronise before reading the clock)."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
