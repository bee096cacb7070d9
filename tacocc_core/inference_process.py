"""The Predictor in a process of its own: frames in, label grids out, through shared memory and a pipe.

Why: a process that also receives sensor messages (the ROS node: deserialising 20 Hz clouds and 72
images/s, decoding, publishing) runs that Python work under the same interpreter lock as the network's
Python-level code (module calls, the fuser's retrieval, spconv's Python side) and its many short torch
calls, each of which must take the lock back. In a process of its own the network has an interpreter
lock to itself and torch's threads the cores the scheduler gives them.

Protocol (one request in flight; `InferenceProcess` serialises its callers with a lock):
- the parent copies `images` and `points` into shared memory blocks it owns (`SharedArrayWriter`) and
  sends the small rest of the frame (matrices, stamp, stream id, a reset flag) through a pipe;
- the child (`serve`) views the blocks, runs `Predictor.predict`, writes the (X, Y, Z) uint8 labels into
  a block the parent reserved, and answers with the rest of the `Prediction` (k histogram, timings,
  temporal reset, error);
- `reload` and `stop` are messages of the same pipe.

A child that dies (killed, out of memory, a native crash) shows as a closed pipe or a dead process:
`predict` raises `InferenceProcessError` with the exit code, and `restart()` starts a fresh child (the
temporal state starts over). A parent that dies closes the pipe, and the child, waiting on it, exits.
The child ignores SIGINT (a Ctrl-C reaches the whole process group; the parent stops it in order).

The child is started with the `spawn` method: forking a process that runs DDS and OpenMP threads is
unsafe. It imports torch and builds the network itself (a few seconds at start and at each restart).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import cast

import numpy as np

# Torch-free modules only: the parent never imports torch (the child does, in `serve`).
from tacocc_core.checkpoint_error import CheckpointError
from tacocc_core.config import ModelConfig
from tacocc_core.frame import Frame
from tacocc_core.predictor_options import Backend, Precision, Prediction
from tacocc_core.shared_arrays import SharedArrayReader, SharedArrayWriter


class InferenceProcessError(RuntimeError):
    """The inference process is not running: it failed to start, died, or stopped answering."""


@dataclass(frozen=True)
class InferenceProcessOptions:
    """How the inference process runs.

    Args:
        threads: torch intra-op threads of the child; 0 = every core the parent may use.
        start_timeout_s: how long the child may take to load the network and say it is ready.
        keep_freed_memory: apply `tacocc_core.allocator.keep_freed_memory` in the child (the network's
            large tensors reuse freed heap instead of being mapped afresh each frame).
        backend, onnx_dir: as `PredictorOptions` ("" = export the ONNX parts in memory).
    """

    threads: int = 0
    start_timeout_s: float = 300.0
    keep_freed_memory: bool = True
    backend: Backend = "torch"
    onnx_dir: str = ""


@dataclass(frozen=True)
class _Startup:
    config: ModelConfig
    checkpoint: str | None
    device: str
    precision: Precision
    threads: int
    keep_freed_memory: bool
    backend: Backend = "torch"
    onnx_dir: str = ""


class InferenceProcess:
    """A `Predictor` running in a spawned child; `predict`, `reset`, `reload` and `device` as the Predictor's.

    Args:
        config: the model config.
        checkpoint: weights to load; None keeps the random initialisation.
        device, precision: as `PredictorOptions` (timings are off: the child does not synchronise stages).
        options: threads, start timeout, allocator setting.

    Raises InferenceProcessError when the child does not get ready, and CheckpointError when it
    refuses the checkpoint.
    """

    def __init__(
        self,
        config: ModelConfig,
        checkpoint: str | None,
        device: str = "cpu",
        precision: Precision = "fp32",
        options: InferenceProcessOptions = InferenceProcessOptions(),
    ) -> None:
        threads = options.threads or len(os.sched_getaffinity(0))
        self._startup = _Startup(
            config, checkpoint, device, precision, threads, options.keep_freed_memory, options.backend, options.onnx_dir
        )
        self.config = config
        self.options = options
        self.threads = threads
        self.grid_shape = tuple(config.grid.spec().shape)
        self.device = "?"
        self.restarts = 0
        self._lock = threading.Lock()
        self._interrupted = threading.Event()
        self._reset = False
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._arrays: SharedArrayWriter | None = None
        with self._lock:
            self._start()

    # --- life cycle ----------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The child's process id (None when not running)."""
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._arrays = SharedArrayWriter()
        self._process = context.Process(target=serve, args=(child, self._startup), name="tacocc-inference")
        self._process.start()
        child.close()
        self._conn = parent
        kind, value = self._receive(self.options.start_timeout_s)
        if kind == "checkpoint_error":
            self._stop()
            raise CheckpointError(value)
        if kind != "ready":
            self._stop()
            raise InferenceProcessError(f"the inference process did not start: {value}")
        self.device = str(value)

    def restart(self) -> None:
        """Stop the child if it still runs and start a fresh one (its temporal state starts over)."""
        with self._lock:
            self._stop()
            self.restarts += 1
            self._start()

    def interrupt(self) -> None:
        """Make a `predict` that waits for the child give up within 0.5 s (raising InferenceProcessError).

        For a prompt shutdown: the frame in progress is abandoned rather than awaited, and every later call
        raises too; `close()` follows.
        """
        self._interrupted.set()

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the child to stop, wait `timeout_s`, then kill it; release the shared memory. Idempotent."""
        self._interrupted.set()
        with self._lock:
            self._stop(timeout_s)

    def _stop(self, timeout_s: float = 10.0) -> None:
        if self._conn is not None:
            try:
                self._conn.send(("stop", None))
            except (OSError, ValueError):  # the child is gone already
                pass
        if self._process is not None:
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout_s)
            self._process.close()
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._arrays is not None:
            self._arrays.close()
            self._arrays = None

    def _receive(self, timeout_s: float | None) -> tuple[str, object]:
        """The child's next reply; InferenceProcessError when it dies or `timeout_s` passes first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        conn, process = self._conn, self._process
        if conn is None or process is None:
            raise InferenceProcessError("the inference process is not running (closed, or a restart failed)")
        while True:
            if self._interrupted.is_set():
                raise InferenceProcessError("interrupted: the inference process is being stopped")
            try:
                if conn.poll(0.5):
                    return conn.recv()
            except (EOFError, OSError):
                pass  # the pipe closed: the child is gone, reported below
            else:
                if process.is_alive() and (deadline is None or time.monotonic() < deadline):
                    continue
            process.join(1.0)
            code = process.exitcode
            if code is None and deadline is not None and time.monotonic() >= deadline:
                raise InferenceProcessError(f"the inference process did not answer within {timeout_s:.0f} s")
            raise InferenceProcessError(f"the inference process exited ({_describe_exit(code)})")

    def _call(self, message: tuple, timeout_s: float | None = None) -> tuple[str, object]:
        conn, process = self._conn, self._process
        if conn is None or process is None:
            raise InferenceProcessError("the inference process is not running (closed, or a restart failed)")
        try:
            conn.send(message)
        except (OSError, ValueError) as err:
            process.join(1.0)
            raise InferenceProcessError(
                f"the inference process exited ({_describe_exit(process.exitcode)}): {err}"
            ) from None
        return self._receive(timeout_s)

    # --- the Predictor's interface -------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the temporal state before the next frame."""
        self._reset = True

    def reload(self, path: str) -> None:
        """Swap in another checkpoint of the same network; CheckpointError (weights kept) when it does not fit."""
        with self._lock:
            kind, value = self._call(("reload", str(path)))
        if kind == "checkpoint_error":
            raise CheckpointError(value)
        self._startup = dataclasses.replace(self._startup, checkpoint=str(path))  # restarts load it

    def predict(self, frame: Frame) -> Prediction:
        """Run one frame in the child; a `Prediction` (labels copied out of shared memory).

        Raises InferenceProcessError when the child is not running or dies meanwhile.
        """
        with self._lock:
            arrays = self._arrays
            if self._process is None or arrays is None:
                raise InferenceProcessError("the inference process is not running (closed, or a restart failed)")
            images, points = arrays.write("images", frame.images), arrays.write("points", frame.points)
            labels = arrays.reserve("labels", self.grid_shape, "u1")
            request = {
                "images": images,
                "points": points,
                "labels": labels,
                "cam2img": frame.cam2img,
                "cam2lidar": frame.cam2lidar,
                "lidar2global": frame.lidar2global,
                "camera_valid": frame.camera_valid,
                "stamp_ns": int(frame.stamp_ns),
                "stream_id": frame.stream_id,
                "reset": self._reset,
            }
            self._reset = False
            kind, value = self._call(("predict", request))
            if kind != "prediction":
                raise InferenceProcessError(f"unexpected answer {kind!r} from the inference process: {value}")
            prediction = cast(Prediction, value)
            prediction.labels = arrays.view(labels).copy()
            return prediction


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --- the child ----------------------------------------------------------------------------------------
def serve(conn, startup: _Startup) -> None:
    """The child's loop: build the Predictor, then answer requests until `stop` or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from tacocc_core.allocator import keep_freed_memory
    from tacocc_core.predictor import Predictor, PredictorOptions

    if startup.keep_freed_memory:
        keep_freed_memory()
    torch.set_num_threads(startup.threads)
    options = PredictorOptions(
        device=startup.device,
        precision=startup.precision,
        timings=False,
        backend=startup.backend,
        onnx_dir=startup.onnx_dir or None,
    )
    try:
        if startup.checkpoint:
            predictor = Predictor.from_checkpoint(startup.checkpoint, startup.config, options)
        else:
            predictor = Predictor(startup.config, None, options)
    except CheckpointError as err:
        conn.send(("checkpoint_error", str(err)))
        return
    except Exception as err:  # noqa: BLE001 - the parent reports why the child did not start
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", str(predictor.device)))
    reader = SharedArrayReader()
    try:
        while True:
            try:
                op, value = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if op == "stop":
                return
            if op == "reload":
                try:
                    predictor.reload(value)
                    conn.send(("reloaded", value))
                except CheckpointError as err:
                    conn.send(("checkpoint_error", str(err)))
            elif op == "predict":
                conn.send(("prediction", _predict(predictor, reader, value)))
            else:
                conn.send(("error", f"unknown request {op!r}"))
    finally:
        reader.close()


def _predict(predictor, reader: SharedArrayReader, request: dict):
    if request["reset"]:
        predictor.reset()
    reader.keep_only({request[key].name for key in ("images", "points", "labels")})
    frame = Frame(
        images=reader.view(request["images"]),
        cam2img=request["cam2img"],
        cam2lidar=request["cam2lidar"],
        points=reader.view(request["points"]),
        lidar2global=request["lidar2global"],
        stamp_ns=request["stamp_ns"],
        camera_valid=request["camera_valid"],
        stream_id=request["stream_id"],
    )
    prediction = predictor.predict(frame)
    labels = reader.view(request["labels"])
    labels[...] = prediction.labels
    prediction.labels = np.empty((0,), dtype=np.uint8)  # the labels travel through shared memory
    return prediction
