"""What a Predictor is asked for and what it answers, defined without torch.

The precision and backend names, `PredictorOptions` and one frame's `Prediction`.
The parent of an inference process (the ROS node) holds these; only the process that runs the network
imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Precision = Literal["fp32", "bf16", "fp16"]
Backend = Literal["torch", "onnxruntime"]
BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class PredictorOptions:
    """How the Predictor runs.

    Args:
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
        precision: "fp32", or autocast to "bf16" / "fp16" (spconv and the warp stay in float32). On a CPU
            with native bf16 (`native_bf16`), "bf16" runs the convolutions faster than fp32 and changes
            the labels of a small share of voxels.
        timings: measure per-stage times (synchronises CUDA at stage boundaries).
        fold: run the network rewritten by `fold_for_inference` (batch norms folded into the trunk's
            convolutions, channels-last trunk, oneDNN 3D convolutions); False runs it as it trains.
            Backend torch only.
        backend: "torch" (eager PyTorch) or "onnxruntime": the exported parts (image branch + view transform,
            ConvLSTM cell + head) in onnxruntime, the LiDAR branch, fuser and warp in PyTorch
            (`tacocc_core.deploy.ort_network`). onnxruntime runs fp32 on the CPU; on CUDA it uses TensorRT
            when onnxruntime has it (fp32, fp16, bf16).
        onnx_dir: with backend onnxruntime, a folder written by `tacocc export --onnx` for these weights; None
            exports the parts in memory when the Predictor starts.
        engine_cache: the TensorRT engine cache folder (None: ~/.cache/tacocc/tensorrt).
        onnx_parts: with backend onnxruntime, "all" (both exported parts) or "image" (the image branch and view
            transform; the ConvLSTM cell and the head stay in PyTorch, folded, where oneDNN's direct 3D
            convolutions may beat onnxruntime's on a CPU).
    """

    device: str = "auto"
    precision: Precision = "fp32"
    timings: bool = True
    fold: bool = True
    backend: Backend = "torch"
    onnx_dir: str | None = None
    engine_cache: str | None = None
    onnx_parts: Literal["all", "image"] = "all"


@dataclass
class Prediction:
    """One frame's result.

    Args:
        labels: (X, Y, Z) uint8 grid on the config grid, LiDAR frame (0 empty, 1..16, 255 unknown on error).
        probabilities: (17, X, Y, Z) float32 class probabilities, when asked for.
        k_histogram: chosen-k counts {modality: {scale: {k: count}}} of the adaptive fuser.
        k_maps: when asked for, per (scale s, query modality m) at index s * 2 + m, (Xs, Ys, Zs) int8
            chosen k of each query voxel of that scale's grid (0: no query); see fuser.KStats.
        timings_ms: per-stage milliseconds and "total".
        temporal_reset: why the temporal state was not carried over (None when it was).
        error: None, or why the frame could not be processed.
    """

    labels: np.ndarray
    probabilities: np.ndarray | None = None
    k_histogram: dict = field(default_factory=dict)
    k_maps: list[np.ndarray] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    temporal_reset: str | None = None
    error: str | None = None
