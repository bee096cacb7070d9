"""Where the occupancy node runs its network: a child process (the default) or a thread of its own process.

Both give a `predict(frame) -> Prediction`, `reset()`, `reload(path)` and `device`:
- `process`: `tacocc_core.inference_process.InferenceProcess`, the network in a spawned child fed through
  shared memory, so the node's message handling and the network no longer take turns on one interpreter
  lock (the measurement is in `occupancy_node`'s docstring); the node's own heap returns large freed
  blocks (a refused 2-million-point cloud) to the system (`tacocc_core.allocator.return_large_blocks`).
- `thread`: the `Predictor` in the node process, as before (the reference twin of the process path); the
  process then keeps freed memory for the network's tensors (`tacocc_core.allocator.keep_freed_memory`).
"""

from __future__ import annotations

from tacocc_core.allocator import keep_freed_memory, return_large_blocks
from tacocc_core.config import ModelConfig
from tacocc_core.inference_process import InferenceProcess, InferenceProcessError, InferenceProcessOptions
from tacocc_core.predictor import Predictor, PredictorOptions
from tacocc_ros.node.threads import set_inference_threads

__all__ = ["InferenceProcess", "InferenceProcessError", "Inference", "make_inference"]

Inference = Predictor | InferenceProcess


def make_inference(
    kind: str,
    config: ModelConfig,
    checkpoint: str,
    device: str,
    precision: str,
    threads: int,
    backend: str = "torch",
    onnx_dir: str = "",
) -> tuple[Inference, str]:
    """The network for `kind` ("process" or "thread") and a line for the log saying how it runs.

    `checkpoint` "" keeps random weights; `threads` 0 = every core; `backend` torch or onnxruntime, `onnx_dir`
    a `tacocc export --onnx` folder ("" = export in memory). Raises CheckpointError for a checkpoint that does
    not fit, InferenceProcessError when the child does not start, OnnxModelError (a thread) for ONNX files
    that do not fit.
    """
    if kind == "process":
        process_options = InferenceProcessOptions(threads=threads, backend=backend, onnx_dir=onnx_dir)
        inference = InferenceProcess(config, checkpoint or None, device, precision, process_options)
        malloc = return_large_blocks()
        return inference, (
            f"inference in process {inference.pid} ({inference.threads} torch threads; "
            f"{malloc or 'glibc malloc defaults'} here)"
        )
    malloc = keep_freed_memory()  # before the first frame's tensors
    count = set_inference_threads(threads)
    options = PredictorOptions(
        device=device,
        precision=precision,
        timings=False,
        backend=backend,  # type: ignore[arg-type]
        onnx_dir=onnx_dir or None,
    )
    if checkpoint:
        predictor = Predictor.from_checkpoint(checkpoint, config, options)
    else:
        predictor = Predictor(config, None, options)
    return predictor, f"inference in a thread of the node ({count} torch threads; {malloc or 'glibc malloc defaults'})"
