"""A FIFO between the subscription callbacks and the bag writer, bounded by the bytes it holds.

`put(item, size)` refuses an item (returns False: the caller counts it as dropped) when it would take the
queue past `max_bytes`, so a writer that falls behind (a slow disk) costs the newest messages, never
unbounded memory. An item of any size is accepted into an empty queue, so one message larger than the
bound is still recorded. `force=True` items (control entries, size 0) are always accepted. After
`close()`, `get` returns what is left and then None; `put` refuses everything.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class ByteQueue:
    """Thread-safe FIFO bounded by the sum of its items' sizes (see the module docstring).

    Args:
        max_bytes: the most bytes held at once (> 0).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"ByteQueue.max_bytes must be > 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.peak_bytes = 0
        self._items: deque[tuple[Any, int]] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any, size: int, force: bool = False) -> bool:
        """Append `item` of `size` bytes; False (nothing kept) when full or closed."""
        with self._cond:
            if self._closed:
                return False
            if not force and self._items and self.bytes + size > self.max_bytes:
                return False
            self._items.append((item, size))
            self.bytes += size
            self.peak_bytes = max(self.peak_bytes, self.bytes)
            self._cond.notify()
            return True

    def get(self, timeout_s: float | None = None) -> Any | None:
        """The oldest item; None when none came within `timeout_s` or the queue is closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            if not self._items:
                return None
            item, size = self._items.popleft()
            self.bytes -= size
            return item

    def close(self) -> None:
        """Refuse further items; `get` drains what is held, then returns None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        """Items held now (control entries included)."""
        with self._cond:
            return len(self._items)

    @property
    def closed_and_empty(self) -> bool:
        with self._cond:
            return self._closed and not self._items
