"""Spin a node until SIGINT or SIGTERM and shut it down in an order that leaves no exception behind.

Shutdown order: rclpy's own signal handlers are not installed, because they invalidate the context at
once, while a timer callback or the inference worker may still be publishing ("Failed to publish:
publisher's context is invalid", then "The following exception was never retrieved" from the executor's
unfinished task). Here a signal only sets `stop` (a Python handler, run in the main thread once the
executor's wait returns: within the 1 s wait timeout, not a busy loop); the spin loop ends between two
callbacks, the executor stops, the node's `close()`
stops its worker (and its inference process), the node is destroyed, and only then is the context shut down.
A lifecycle node that reaches its finalized state (the `shutdown` transition) ends the spin the same way.

One `SingleThreadedExecutor`: it blocks in rcl_wait between callbacks, where rclpy's
`MultiThreadedExecutor` spins in its wait loop while a callback runs and holds the interpreter lock the
node's other threads need.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from tacocc_ros.messages.transport import large_message_environment


def run_until_signal(
    build_node: Callable[[], Any],
    name: str,
    args: list[str] | None = None,
    make_executor: Callable[[], Executor] = SingleThreadedExecutor,
) -> int:
    """Build the node, spin it until a signal, shut it down; 0, or 1 on a startup error.

    The node must have `close()`; a node with a true `finalized` attribute (a lifecycle node after its
    shutdown transition) ends the spin. A startup error is printed on stderr after `name`.
    `make_executor` is for a benchmark comparing executors; a pool executor's callbacks still running
    at the stop are joined before the node is closed.
    """
    os.environ.update(large_message_environment(dict(os.environ)))  # before the first participant: see transport.py
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = executor = None
    status = 0
    try:
        node = build_node()
        executor = make_executor()
        executor.add_node(node)
        while not stop.is_set() and node.context.ok() and not getattr(node, "finalized", False):
            executor.spin_once(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as err:  # noqa: BLE001 - a startup error ends the process with its message, not a trace
        if not stop.is_set():
            print(f"{name}: {type(err).__name__}: {err}", file=sys.stderr)
            status = 1
    finally:
        if executor is not None:
            pool = getattr(executor, "_executor", None)  # MultiThreadedExecutor's: join it before shutdown
            if pool is not None and hasattr(pool, "shutdown"):
                pool.shutdown(wait=True)
            executor.shutdown(timeout_sec=10.0)
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return status


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT / SIGTERM set `stop` (the caller ends its work cleanly); a second one raises KeyboardInterrupt."""

    def handler(signum: int, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
