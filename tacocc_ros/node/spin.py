"""Spin a node until SIGINT or SIGTERM and shut it down in an order that leaves no exception behind.

Shutdown order: rclpy's own signal handlers are not installed, because they invalidate the context at
once, while a timer callback or the inference worker may still be publishing ("Failed to publish:
publisher's context is invalid", then "The following exception was never retrieved" from the executor's
unfinished task). Here a signal only sets `stop` (a Python handler, run in the main thread once the
executor's wait returns: within the 1 s wait timeout, not a busy loop); the spin loop ends between two
callbacks, the callbacks still running finish (`_join_callbacks`), the executor stops, the node's `close()`
stops its worker (and its inference process), the node is destroyed, and only then is the context shut down.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions

from tacocc_ros.messages.transport import large_message_environment
from tacocc_ros.node.threads import make_executor


def _join_callbacks(executor) -> None:
    """Let the callbacks a MultiThreadedExecutor already handed to its threads finish.

    rclpy's `MultiThreadedExecutor.shutdown` (9.1) destroys the executor's guard condition before it joins
    its thread pool, so a callback still starting then fails with "cannot use Destroyable because
    destruction was requested" (printed at exit as "The following exception was never retrieved").
    Joining the pool first (its own `shutdown(wait=True)`, which `MultiThreadedExecutor.shutdown` repeats)
    avoids that; other executors have no pool and nothing to join.
    """
    pool = getattr(executor, "_executor", None)
    if pool is not None and hasattr(pool, "shutdown"):
        pool.shutdown(wait=True)


def run_until_signal(build_node: Callable[[], Any], name: str, args: list[str] | None = None) -> int:
    """Build the node, spin it until a signal, shut it down; 0, or 1 on a startup error.

    The node's `values["executor"]` picks the executor; it must have `close()`. A startup error is printed
    on stderr after `name`.
    """
    os.environ.update(large_message_environment(os.environ))  # before the first participant: see transport.py
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = executor = None
    status = 0
    try:
        node = build_node()
        executor = make_executor(node.values["executor"])
        executor.add_node(node)
        while not stop.is_set() and node.context.ok():
            executor.spin_once(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as err:  # noqa: BLE001 - a startup error ends the process with its message, not a trace
        if not stop.is_set():
            print(f"{name}: {type(err).__name__}: {err}", file=sys.stderr)
            status = 1
    finally:
        if executor is not None:
            _join_callbacks(executor)
            executor.shutdown(timeout_sec=10.0)
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return status
