"""Readable logs under a flood of bad messages: one line per reason per throttle period, with a count.

Plain Python with explicit times (integer nanoseconds passed in by the caller), so it is tested with a
constructed clock. Thread-safe: the subscription callbacks and the inference worker both report into it.

    throttle = LogThrottle(period_ns=5_000_000_000)
    line = throttle.report("bad PointCloud2", "dropped sweep 17: /LIDAR_TOP: no field x", now_ns)
    if line is not None:
        logger.error(line)
    for line in throttle.flush(now_ns):   # from a timer: the counts of reasons that went quiet
        logger.error(line)

Rules, per reason (a fixed key such as "bad PointCloud2"; the details that vary go in the message):
- The first occurrence in a period is returned at once, as given.
- Later occurrences in the same period are counted, not returned; the latest message is kept.
- The first occurrence after the period, or `flush` once the period is over, returns one line with the
  count: `<reason>: 41 more in the last 5.0 s (latest: <message>)`.
- Reasons held at once are bounded by `max_reasons`; beyond it the reason `other` takes the overflow,
  so a caller that builds keys from data cannot grow the state (or the log) without bound.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

OTHER = "other"


@dataclass
class _Window:
    start_ns: int
    suppressed: int = 0
    latest: str = ""


class LogThrottle:
    """Per-reason log throttle (see the module docstring).

    Args:
        period_ns: length of one throttle period; at most one plain line and one count line per reason
            per period.
        max_reasons: reasons tracked at once; further reasons share the key `other`.
    """

    def __init__(self, period_ns: int = 5_000_000_000, max_reasons: int = 64) -> None:
        if period_ns <= 0 or max_reasons < 1:
            raise ValueError(f"period_ns and max_reasons must be positive, got {period_ns}, {max_reasons}")
        self.period_ns = int(period_ns)
        self.max_reasons = int(max_reasons)
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons with an open period (bounded by `max_reasons` + 1)."""
        with self._lock:
            return tuple(self._windows)

    def report(self, reason: str, message: str, now_ns: int) -> str | None:
        """Count one occurrence of `reason`; the line to log now, or None when it is counted for later."""
        now_ns = int(now_ns)
        with self._lock:
            if reason not in self._windows and len(self._windows) >= self.max_reasons:
                reason, message = OTHER, f"{reason}: {message}"
            window = self._windows.get(reason)
            if window is None:
                self._windows[reason] = _Window(now_ns)
                return message
            if now_ns - window.start_ns < self.period_ns:
                window.suppressed += 1
                window.latest = message
                return None
            summary = self._summary(reason, window, now_ns)
            self._windows[reason] = _Window(now_ns)
            return message if summary is None else f"{summary}; now: {message}"

    def flush(self, now_ns: int) -> list[str]:
        """Count lines of the reasons whose period is over, and forget those reasons (a quiet reason ends)."""
        now_ns = int(now_ns)
        lines = []
        with self._lock:
            for reason, window in list(self._windows.items()):
                if now_ns - window.start_ns >= self.period_ns:
                    summary = self._summary(reason, window, now_ns)
                    if summary is not None:
                        lines.append(summary)
                    del self._windows[reason]
        return lines

    def _summary(self, reason: str, window: _Window, now_ns: int) -> str | None:
        if not window.suppressed:
            return None
        seconds = (now_ns - window.start_ns) / 1e9
        return f"{reason}: {window.suppressed} more in the last {seconds:.1f} s (latest: {window.latest})"
