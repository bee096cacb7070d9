"""Where the occupancy node runs its network: a child process fed through shared memory.

`make_inference` starts `tacocc_core.inference_process.InferenceProcess` (the `Predictor` in a spawned
child), so the node's message handling and the network do not take turns on one interpreter lock, and a
crash of the network is reported and the process restarted instead of taking the node down. The node's
own heap returns large freed blocks (a refused 2-million-point cloud) to the system
(`tacocc_core.allocator.return_large_blocks`).
"""

from __future__ import annotations

from tacocc_core.allocator import return_large_blocks
from tacocc_core.config import ModelConfig
from tacocc_core.inference_process import InferenceProcess, InferenceProcessError, InferenceProcessOptions
from tacocc_core.predictor_options import Backend, Precision

__all__ = ["InferenceProcess", "InferenceProcessError", "make_inference"]


def make_inference(
    config: ModelConfig,
    checkpoint: str,
    device: str,
    precision: Precision,
    threads: int,
    backend: Backend = "torch",
    onnx_dir: str = "",
) -> tuple[InferenceProcess, str]:
    """The network's process and a line for the log saying how it runs.

    `checkpoint` "" keeps random weights; `threads` 0 = every core; `backend` torch or onnxruntime, `onnx_dir`
    a `tacocc export --onnx` folder ("" = export in memory). Raises CheckpointError for a checkpoint that does
    not fit, InferenceProcessError when the child does not start, OnnxModelError (a thread) for ONNX files
    that do not fit.
    """
    process_options = InferenceProcessOptions(threads=threads, backend=backend, onnx_dir=onnx_dir)
    inference = InferenceProcess(config, checkpoint or None, device, precision, process_options)
    malloc = return_large_blocks()
    return inference, (
        f"inference in process {inference.pid} ({inference.threads} torch threads; "
        f"{malloc or 'glibc malloc defaults'} here)"
    )
