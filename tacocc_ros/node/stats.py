"""Running counters of the occupancy node: input rates, latency percentiles, drops, failures, k histogram.

Plain Python with explicit times (integer nanoseconds passed in by the caller), so it is tested with
constructed clocks and used unchanged by an offline node. Thread-safe: the subscription callbacks and
the worker thread both report into it.

The key set is bounded whatever the callers pass: each of the drop, failure and event counters holds at most
`max_keys` reasons, and further reasons are added up under `other` (so /diagnostics, which has one value per
key, cannot grow without bound). Callers use fixed reasons and put what varies (a gap, a stamp) in logs.
"""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

OTHER = "other"  # the reason that takes the counts past `max_keys`


class NodeStats:
    """Counters and windows behind the /diagnostics message (see `outputs.build_diagnostics`).

    Args:
        rate_window_ns: input rates are counted over this trailing window of receive times.
        latency_window: latency percentiles are over this many most recent published frames.
        max_keys: reasons kept per counter (drops, failures, events); more are counted under `other`.
    """

    def __init__(self, rate_window_ns: int = 5_000_000_000, latency_window: int = 200, max_keys: int = 64) -> None:
        if rate_window_ns <= 0 or latency_window <= 0 or max_keys < 1:
            raise ValueError(
                f"windows must be positive and max_keys >= 1, got {rate_window_ns} ns, {latency_window} frames, "
                f"{max_keys} keys"
            )
        self.rate_window_ns = int(rate_window_ns)
        self.max_keys = int(max_keys)
        self._arrivals: dict[str, deque[int]] = {}
        self._latencies_ns: deque[int] = deque(maxlen=latency_window)
        self._dropped: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._k: Counter[int] = Counter()
        self._events: Counter[str] = Counter()
        self._published = 0
        self._reported_dropped = 0
        self._reported_failed = 0
        self._lock = threading.Lock()

    def on_input(self, topic: str, now_ns: int) -> None:
        """A message arrived on `topic` at (monotonic or ROS) time `now_ns`."""
        with self._lock:
            arrivals = self._arrivals.setdefault(topic, deque())
            if arrivals and now_ns < arrivals[-1]:  # the clock went back (a replayed bag looped): restart
                arrivals.clear()
            arrivals.append(int(now_ns))
            self._trim(arrivals, int(now_ns))

    def on_published(self, lidar_stamp_ns: int, publish_ns: int) -> None:
        """Outputs of the frame with `lidar_stamp_ns` went out at `publish_ns` (same clock as the stamps)."""
        with self._lock:
            self._published += 1
            self._latencies_ns.append(int(publish_ns) - int(lidar_stamp_ns))

    def on_dropped(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self._count(self._dropped, reason, count)

    def on_failed(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self._count(self._failed, reason, count)

    def on_event(self, name: str, count: int = 1) -> None:
        """Count something that is neither a drop nor a failure (a degraded frame, a temporal reset)."""
        with self._lock:
            self._count(self._events, name, count)

    def _count(self, counter: Counter[str], key: str, count: int) -> None:
        if key not in counter and len(counter) >= self.max_keys:
            key = OTHER
        counter[key] += count

    def on_k(self, k_values: np.ndarray) -> None:
        """Add the k chosen per fusion query ((Q,) ints) of one frame to the histogram."""
        values, counts = np.unique(np.asarray(k_values, dtype=np.int64), return_counts=True)
        with self._lock:
            for k, n in zip(values.tolist(), counts.tolist(), strict=True):
                self._k[k] += n

    def snapshot(self, now_ns: int) -> dict:
        """The state as a plain dict; `new_dropped` / `new_failed` count since the previous snapshot."""
        with self._lock:
            rates = {}
            for topic, arrivals in self._arrivals.items():
                self._trim(arrivals, int(now_ns))
                rates[topic] = len(arrivals) * 1e9 / self.rate_window_ns
            lat = np.asarray(self._latencies_ns, dtype=np.float64) / 1e6
            latency: dict[str, float | None] = {"p50": None, "p99": None, "max": None}
            if lat.size:
                p50, p99 = np.percentile(lat, [50, 99])
                latency = {"p50": float(p50), "p99": float(p99), "max": float(lat.max())}
            total_dropped, total_failed = sum(self._dropped.values()), sum(self._failed.values())
            out = {
                "rates_hz": rates,
                "latency_ms": latency,
                "published": self._published,
                "dropped": dict(self._dropped),
                "failed": dict(self._failed),
                "k_histogram": dict(self._k),
                "events": dict(self._events),
                "new_dropped": total_dropped - self._reported_dropped,
                "new_failed": total_failed - self._reported_failed,
            }
            self._reported_dropped, self._reported_failed = total_dropped, total_failed
            return out

    def _trim(self, arrivals: deque[int], now_ns: int) -> None:
        while arrivals and arrivals[0] <= now_ns - self.rate_window_ns:
            arrivals.popleft()
