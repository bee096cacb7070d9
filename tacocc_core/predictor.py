"""`Predictor`: numpy frame in, occupancy grid out — the inference API of the ROS node and the evaluation.

It owns the network, the device, the precision and the streamed temporal state. `predict` never raises
for a bad frame: a frame the network cannot process comes back as an all-255 (unknown) grid with
`error` set, and the temporal state starts afresh.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tacocc_core.batch import batch_at, frames_to_batch
from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, CheckpointError, load_checkpoint
from tacocc_core.config import ModelConfig
from tacocc_core.frame import Frame
from tacocc_core.geometry import ImageTransform
from tacocc_core.labels import IGNORE
from tacocc_core.model.inference_folding import fold_for_inference
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.model.temporal import StreamState
from tacocc_core.predictor_options import BACKENDS, Prediction, PredictorOptions
from tacocc_core.timing import StageTimer

if TYPE_CHECKING:
    from tacocc_core.deploy.ort_network import OrtNetwork

# Prediction and PredictorOptions are part of this module's interface (defined torch-free beside it).
__all__ = ["AUTOCAST_DTYPES", "BACKENDS", "Prediction", "Predictor", "PredictorOptions", "native_bf16"]

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware.

    True for a CUDA GPU with bf16 and for a CPU with AVX-512 BF16 or AMX; elsewhere oneDNN emulates bf16 and
    it runs slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's CPU-feature queries
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


class Predictor:
    """A TACOcc network ready for streaming inference.

    Args:
        config: the model config.
        weights: a state dict (from a checkpoint); None keeps the random initialisation (tests, benchmarks).
        options: device, precision, timings.
    """

    def __init__(
        self, config: ModelConfig, weights: dict | None = None, options: PredictorOptions = PredictorOptions()
    ) -> None:
        if options.precision not in ("fp32", *AUTOCAST_DTYPES):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {options.precision!r}")
        if options.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {options.backend!r}")
        self.config = config
        self.options = options
        self.device = pick_device(options.device)
        self.model = TACOcc(config)
        if weights is not None:
            self.model.load_state_dict(weights)
        self.model.to(self.device).eval()
        self._network = self._inference_network(self.model)
        self.grid = config.grid.spec()
        self.checkpoint_path: Path | None = None
        self._state: StreamState | None = None
        self._lock = threading.Lock()  # predict and a checkpoint reload may come from different threads

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, config: ModelConfig | None = None, options: PredictorOptions = PredictorOptions()
    ) -> Predictor:
        """Load weights + config from a checkpoint; with `config`, refuse a checkpoint built for another network."""
        payload = load_checkpoint(path, expected=config, ignore=INFERENCE_IRRELEVANT)
        predictor = cls(config or payload["config"], payload["model"], options)
        predictor.checkpoint_path = Path(path)
        return predictor

    def reload(self, path: str | Path) -> None:
        """Swap in the weights of another checkpoint of the same network, keeping the device and options.

        Raises CheckpointError (and keeps the current weights) when the file is unreadable or does not fit,
        also when with backend onnxruntime the ONNX files of `onnx_dir` hold other weights than the file.
        """
        payload = load_checkpoint(path, expected=self.config, ignore=INFERENCE_IRRELEVANT)
        weights = {k: v.to(self.device) for k, v in payload["model"].items()}
        if self.options.backend == "onnxruntime":  # new sessions first: a failure keeps the running network
            model = TACOcc(self.config)
            model.load_state_dict(weights)
            model.to(self.device).eval()
            from tacocc_core.deploy.onnx_files import OnnxModelError

            try:
                network = self._inference_network(model)
            except OnnxModelError as err:
                raise CheckpointError(f"{path}: does not fit the ONNX files: {err}") from None
            with self._lock:
                self.model, self._network = model, network
                self.checkpoint_path = Path(path)
                self._state = None
            return
        with self._lock:
            self.model.load_state_dict(weights)
            self._network = self._inference_network(self.model)
            self.checkpoint_path = Path(path)
            self._state = None

    def _inference_network(self, model: TACOcc) -> TACOcc | OrtNetwork:
        """What `predict` runs: `model`, its folded copy (options.fold), or its exported parts in onnxruntime.

        `model` is the network that loads state dicts; backend onnxruntime runs `OrtNetwork(model)`.
        """
        if self.options.backend == "onnxruntime":
            from tacocc_core.deploy.onnx_files import PARTS
            from tacocc_core.deploy.ort_network import OrtNetwork

            if self.options.onnx_parts not in ("all", "image"):
                raise ValueError(f"onnx_parts must be all or image, got {self.options.onnx_parts!r}")
            return OrtNetwork(
                model,
                self.options.onnx_dir,
                self.device,
                self.options.precision,
                engine_cache=self.options.engine_cache,
                parts=PARTS[:1] if self.options.onnx_parts == "image" else PARTS,
            )
        return fold_for_inference(model) if self.options.fold else model

    def reset(self) -> None:
        """Forget the temporal state (the next frame starts a new sequence)."""
        with self._lock:
            self._state = None

    def predict(self, frame: Frame, return_probabilities: bool = False, return_k_maps: bool = False) -> Prediction:
        """Run one frame. Images of another size than the config's are resized (intrinsics follow)."""
        with self._lock:
            start = time.perf_counter()
            timer = StageTimer(self.device, enabled=self.options.timings)
            try:
                with timer.stage("preprocess"):
                    step = self._to_step_batch(frame)
                result = self._run(frame, step, timer, return_probabilities, return_k_maps)
            except Exception as err:  # noqa: BLE001 - one bad frame must not take the caller down
                self._state = None
                result = Prediction(
                    labels=np.full(self.grid.shape, IGNORE, dtype=np.uint8),
                    error=f"{type(err).__name__}: {err}",
                    temporal_reset="error",
                )
            result.timings_ms = {**timer.ms, "total": (time.perf_counter() - start) * 1e3}
            return result

    def _run(
        self, frame: Frame, step: dict, timer: StageTimer, return_probabilities: bool, return_k_maps: bool = False
    ) -> Prediction:
        dtype = AUTOCAST_DTYPES.get(self.options.precision)
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            out = self._network.forward_step(
                step, frame.lidar2global, int(frame.stamp_ns), frame.stream_id, self._state, timer=timer
            )
            with timer.stage("postprocess"):
                logits = out.head.fine_logits[0].float()
                labels = logits.argmax(dim=0).to(torch.uint8).cpu().numpy()  # host sync: the result leaves the GPU
                probabilities = torch.softmax(logits, dim=0).cpu().numpy() if return_probabilities else None
        self._state = out.temporal.state
        return Prediction(
            labels=labels,
            probabilities=probabilities,
            k_histogram=out.encoder.k_stats.as_dict(0),
            k_maps=[m[0].cpu().numpy() for m in out.encoder.k_stats.maps] if return_k_maps else None,
            temporal_reset=out.temporal.reset,
        )

    def _to_step_batch(self, frame: Frame) -> dict[str, torch.Tensor]:
        """Frame -> the `batch_at` layout on the device: images at the config size, finite points only."""
        frame = self._fit_images(frame)
        finite = np.isfinite(frame.points).all(axis=1)
        if not finite.all():
            frame = _replace(frame, points=np.ascontiguousarray(frame.points[finite]))
        batch = frames_to_batch([[_replace(frame, labels=None)]], self.grid.shape)
        step = batch_at(batch, 0)
        return {k: v.to(self.device, non_blocking=True) for k, v in step.items()}

    def _fit_images(self, frame: Frame) -> Frame:
        names = self.config.cameras.names
        if frame.num_cameras != len(names):
            raise ValueError(f"frame has {frame.num_cameras} cameras, the config expects {len(names)} ({names})")
        h, w = self.config.cameras.image_size
        if frame.images.shape[1:3] == (h, w):
            return frame
        transform = ImageTransform.resize_crop_bottom((frame.images.shape[1], frame.images.shape[2]), (h, w))
        images = np.stack([transform.apply_to_image(img) for img in frame.images])
        cam2img = np.stack([transform.apply_to_intrinsics(k) for k in frame.cam2img])
        return _replace(frame, images=images, cam2img=cam2img)


def _replace(frame: Frame, **changes: object) -> Frame:
    fields = {**frame.__dict__, **changes}
    return Frame(**fields)
