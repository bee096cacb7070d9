"""tacocc_ros.node.worker: the keep-latest slot and the worker thread, with a process we hold and release."""

import threading
import time

import pytest

from tacocc_ros.node.worker import LatestSlot, Worker


class Gate:
    """A process function that records items and waits for the test to release each one."""

    def __init__(self):
        self.seen = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, item):
        self.seen.append(item)
        self.started.set()
        assert self.release.wait(5), "the test never released the worker"
        if item == "bad":
            raise ValueError("bad frame")


def wait_until(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.002)


def test_slot_replaces_and_counts():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.take(0) == (True, 2)
    assert slot.take(0.01) == (False, None)
    assert slot.replaced == 1
    slot.put(3)
    assert slot.close() == 3
    assert slot.take(None) == (False, None)  # closed: does not wait
    with pytest.raises(RuntimeError, match="put after close"):
        slot.put(4)


def test_submit_never_waits_and_the_newest_wins():
    gate = Gate()
    worker = Worker(gate).start()
    try:
        worker.submit(0)
        assert gate.started.wait(5) and worker.busy
        t = time.perf_counter()
        replaced = [worker.submit(i) for i in range(1, 6)]  # the worker is stuck inside process(0)
        assert time.perf_counter() - t < 0.5
        assert replaced == [False, True, True, True, True] and worker.replaced == 4
        gate.release.set()
        wait_until(lambda: worker.processed == 2)
        assert gate.seen == [0, 5]
        assert not worker.busy
    finally:
        gate.release.set()
        assert worker.stop()


def test_a_failing_item_is_counted_and_the_next_one_runs():
    errors = []
    gate = Gate()
    gate.release.set()
    worker = Worker(gate, on_error=lambda item, err: errors.append((item, str(err)))).start()
    try:
        worker.submit("bad")
        wait_until(lambda: worker.failed == 1)
        worker.submit("good")
        wait_until(lambda: worker.processed == 1)
        assert errors == [("bad", "bad frame")] and gate.seen == ["bad", "good"]
    finally:
        assert worker.stop()


def test_a_failing_error_handler_does_not_end_the_worker():
    def explode(item, err):
        raise RuntimeError("handler broke")

    gate = Gate()
    gate.release.set()
    worker = Worker(gate, on_error=explode).start()
    try:
        worker.submit("bad")
        wait_until(lambda: worker.failed == 1)
        worker.submit("good")
        wait_until(lambda: worker.processed == 1)
    finally:
        assert worker.stop()


def test_stop_finishes_the_current_item_and_discards_the_waiting_one():
    gate = Gate()
    worker = Worker(gate, name="t-worker").start()
    worker.submit("a")
    assert gate.started.wait(5)
    worker.submit("b")
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    time.sleep(0.05)
    assert stopper.is_alive()  # waits for process("a")
    gate.release.set()
    stopper.join(5)
    assert not stopper.is_alive()
    assert gate.seen == ["a"] and worker.processed == 1 and worker.discarded == 1
    assert not any(t.name == "t-worker" for t in threading.enumerate())
    with pytest.raises(RuntimeError):
        worker.submit("c")


def test_stop_of_an_idle_worker_is_prompt():
    worker = Worker(lambda item: None).start()
    t = time.perf_counter()
    assert worker.stop()
    assert time.perf_counter() - t < 1.0


def test_worker_imports_no_ros_client_library():
    import ast
    import inspect

    from tacocc_ros.node import worker

    tree = ast.parse(inspect.getsource(worker))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] == "rclpy"}
