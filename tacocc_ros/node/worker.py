"""Keep-latest slot and the inference worker thread behind it.

The subscription side calls `Worker.submit(item)`, which never waits for the network: it puts the item
in a one-place slot, replacing (and counting) an older item that the worker has not started yet. The
worker thread takes the newest item whenever it is free. An exception from `process` is counted and
handed to `on_error`, and the worker goes on with the next item: one bad frame never stops the node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item mailbox: `put` replaces what is there, `take` waits for an item or for `close`."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._cond = threading.Condition()
        self.replaced = 0

    def put(self, item: T) -> bool:
        """Store `item`; True when it replaced an item nobody had taken. Never blocks on the taker."""
        with self._cond:
            if self._closed:
                raise RuntimeError("LatestSlot.put after close")
            replaced = self._full
            self.replaced += int(replaced)
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> tuple[bool, T | None]:
        """(True, item) when an item came; (False, None) on timeout or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return False, None
            item, self._item, self._full = self._item, None, False
            return True, item

    def close(self) -> T | None:
        """Refuse further puts, wake the taker; return the item left untaken (or None)."""
        with self._cond:
            self._closed = True
            left, self._item, self._full = self._item, None, False
            self._cond.notify_all()
            return left


class Worker(Generic[T]):
    """Runs `process(item)` on a thread of its own for the newest submitted item.

    Args:
        process: called with each item taken from the slot, on the worker thread.
        on_error: called as `on_error(item, exception)` when `process` raises (on the worker thread);
            None just counts the failure.
        name: the thread's name.
    """

    def __init__(
        self,
        process: Callable[[T], None],
        on_error: Callable[[T, BaseException], None] | None = None,
        name: str = "tacocc-worker",
    ) -> None:
        self._process = process
        self._on_error = on_error
        self._slot: LatestSlot[T] = LatestSlot()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._busy = threading.Event()
        self._lock = threading.Lock()
        self.processed = 0
        self.failed = 0
        self.discarded = 0  # items still in the slot at stop()

    @property
    def replaced(self) -> int:
        """Submitted items replaced by a newer one before the worker took them."""
        return self._slot.replaced

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def start(self) -> Worker[T]:
        self._thread.start()
        return self

    def submit(self, item: T) -> bool:
        """Hand `item` to the worker; True when it replaced an older untaken item. Returns at once."""
        return self._slot.put(item)

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Let the current item finish, discard an untaken one, join the thread; True when it ended."""
        left = self._slot.close()
        self.discarded += int(left is not None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            got, taken = self._slot.take()
            if not got:
                return
            item = cast(T, taken)  # the slot held an item (it may be None)
            self._busy.set()
            try:
                self._process(item)
                with self._lock:
                    self.processed += 1
            except Exception as err:  # noqa: BLE001 - one bad frame must not end the worker
                with self._lock:
                    self.failed += 1
                if self._on_error is not None:
                    try:
                        self._on_error(item, err)
                    except Exception:  # noqa: BLE001 - a failing error handler must not end it either
                        pass
            finally:
                self._busy.clear()
