"""`OrtNetwork`: a TACOcc network's streamed step with the exported parts in onnxruntime, the rest in PyTorch.

The split (see `tacocc_core.deploy.parts`): conditioning, the spconv LiDAR branch, the adaptive fuser (KNN
retrieval) and the ego-motion warp of the temporal state run in PyTorch from the network's weights;
`ImageToVolume` and `VolumeToLogits` run in onnxruntime sessions, from the files of `tacocc export --onnx`
(checked against the network: part, config hash, weights hash) or exported in memory from the network.

`parts` picks what onnxruntime runs: both parts, or the image part alone with the ConvLSTM cell and the head
in PyTorch, rewritten by `fold_for_inference` (on a CPU, oneDNN's direct 3D convolutions can beat
onnxruntime's, which unfold the input into a matrix first).

Execution providers: the CPU one on a CPU device (float32; onnxruntime's CPU kernels have no bf16 or fp16
convolutions); on CUDA the TensorRT one when onnxruntime has it (engines cached by `tensorrt_cache`, fp32,
fp16 or bf16), then the CUDA one (float32).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tacocc_core.deploy import tensorrt_cache
from tacocc_core.deploy.onnx_files import (
    HEAD_PART,
    IMAGE_PART,
    OnnxModelError,
    PartMetadata,
    check_metadata,
    expected_metadata,
    export_part_bytes,
    part_modules,
    read_part_file,
)
from tacocc_core.deploy.parts import feature_size, frustum_voxel_index
from tacocc_core.model.encoder import EncoderOutput, _check_step_batch
from tacocc_core.model.inference_folding import fold_for_inference
from tacocc_core.model.occupancy_head import HeadOutput
from tacocc_core.model.selector import noise_scale_at, tau_at
from tacocc_core.model.tacocc import StepOutput, TACOcc
from tacocc_core.model.temporal import StepResult, StreamState, reset_reason
from tacocc_core.model.warp import relative_pose, warp_volume
from tacocc_core.timing import NULL_TIMER, StageTimer


def default_engine_cache() -> Path:
    """Where TensorRT engines are cached unless told otherwise: $XDG_CACHE_HOME/tacocc/tensorrt (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tacocc" / "tensorrt"


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError("backend onnxruntime needs the onnxruntime package (pip install 'tacocc_ros[onnx]')") from err
    return onnxruntime


class OrtNetwork:
    """What `TACOcc.forward_step` computes, with the exported parts in onnxruntime.

    Args:
        model: the eval-mode network (its weights run the PyTorch parts and are checked against the ONNX files).
        onnx_dir: a folder written by `tacocc export --onnx`, or None to export the parts in memory.
        device: where the PyTorch parts and the sessions run.
        precision: "fp32"; on CUDA with TensorRT also "fp16" or "bf16".
        threads: onnxruntime intra-op threads (0: as many as torch uses).
        engine_cache: the TensorRT engine cache root (None: `default_engine_cache()`).
        parts: the parts onnxruntime runs (`IMAGE_PART` must be one); the others run in PyTorch.

    Raises OnnxModelError naming the file for a missing, unreadable or foreign ONNX file, ValueError for a
    precision the providers cannot run, ImportError without onnxruntime.
    """

    def __init__(
        self,
        model: TACOcc,
        onnx_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        threads: int = 0,
        engine_cache: str | os.PathLike[str] | None = None,
        parts: tuple[str, ...] = (IMAGE_PART, HEAD_PART),
    ) -> None:
        if model.training:
            raise ValueError("OrtNetwork: the network must be in eval mode")
        if IMAGE_PART not in parts or not set(parts) <= {IMAGE_PART, HEAD_PART}:
            raise ValueError(f"OrtNetwork: parts must be ({IMAGE_PART!r},) or both parts, got {parts}")
        self.ort = _import_onnxruntime()
        self.model = model
        self.config = model.config
        self.device = torch.device(device)
        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        self.engine_cache = Path(engine_cache) if engine_cache is not None else default_engine_cache()
        self._check_precision()
        modules = part_modules(model)
        self.sessions: dict[str, Any] = {}
        self.providers: dict[str, list[str]] = {}
        self.parts = tuple(parts)
        # the PyTorch twin of the parts onnxruntime does not run (its temporal aggregator and head)
        self.tail = fold_for_inference(model) if HEAD_PART not in parts else None
        for part in self.parts:
            expected = expected_metadata(model, part, modules[part])
            if onnx_dir is None:
                where = f"<{part} exported in memory>"
                data, _ = export_part_bytes(model, part)
            else:
                where = str(Path(onnx_dir) / f"{part}.onnx")
                data = read_part_file(where)
            session = self._session(data, where)
            found = PartMetadata.from_props(dict(session.get_modelmeta().custom_metadata_map), where)
            check_metadata(found, expected, where)
            self.sessions[part] = session
            self.providers[part] = list(session.get_providers())
        self._frustum: tuple | None = None  # (cam2img, cam2lidar, voxel_index) of the last calibration

    def _check_precision(self) -> None:
        if self.precision == "fp32":
            return
        available = self.ort.get_available_providers()
        if self.device.type != "cuda" or "TensorrtExecutionProvider" not in available:
            raise ValueError(
                f"backend onnxruntime runs {self.precision} only on CUDA with the TensorRT execution provider "
                f"(device {self.device}, providers {available}); use precision fp32 or backend torch"
            )

    def _session(self, data: bytes, where: str) -> Any:
        """An onnxruntime session of `data` on the device's providers; a TensorRT engine that fails is rebuilt once."""
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle pool threads must not spin between runs: the PyTorch parts need the cores then
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers, folder = self._providers(data)
        try:
            return ort.InferenceSession(data, options, providers=providers)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own kinds for bad files and engines
            if folder is None:
                raise OnnxModelError(f"{where}: onnxruntime cannot load it ({type(err).__name__}: {err})") from None
        tensorrt_cache.discard_engines(folder)  # a cached engine that does not load: build it again
        providers, _ = self._providers(data)
        try:
            return ort.InferenceSession(data, options, providers=providers)
        except Exception as err:  # noqa: BLE001
            raise OnnxModelError(f"{where}: onnxruntime cannot load it ({type(err).__name__}: {err})") from None

    def _providers(self, data: bytes) -> tuple[list, Path | None]:
        """(providers for the session, the TensorRT engine folder or None)."""
        if self.device.type != "cuda":
            return ["CPUExecutionProvider"], None
        available = self.ort.get_available_providers()
        index = self.device.index if self.device.index is not None else 0
        providers: list = []
        folder = None
        version = tensorrt_cache.tensorrt_version()
        if "TensorrtExecutionProvider" in available and version is not None:
            major, minor = torch.cuda.get_device_capability(index)
            key = tensorrt_cache.EngineKey(
                hashlib.sha256(data).hexdigest(),
                (major, minor),
                version,
                self.precision,
            )
            folder = tensorrt_cache.engine_cache_dir(self.engine_cache, key)
            options = {"device_id": str(index), **tensorrt_cache.provider_options(folder, self.precision)}
            providers.append(("TensorrtExecutionProvider", options))
        if "CUDAExecutionProvider" not in available:
            raise ValueError(
                f"backend onnxruntime on {self.device} needs onnxruntime-gpu (providers here: {available})"
            )
        providers.append(("CUDAExecutionProvider", {"device_id": str(index)}))
        return providers, folder

    def _voxel_index(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """`frustum_voxel_index` of the batch's calibration (int64), kept while the calibration stays equal."""
        cam2img, cam2lidar = batch["cam2img"].cpu(), batch["cam2lidar"].cpu()
        cached = self._frustum
        if cached is not None and torch.equal(cached[0], cam2img) and torch.equal(cached[1], cam2lidar):
            return cached[2]
        height, width = self.config.cameras.image_size
        image_hw = (height, width)
        feat_hw = feature_size(image_hw, self.config.image_backbone.feature_stride)
        view_transform = self.model.encoder.view_transform
        index = frustum_voxel_index(view_transform, cam2img, cam2lidar, feat_hw, image_hw)
        self._frustum = (cam2img.clone(), cam2lidar.clone(), index.numpy())
        return self._frustum[2]

    def _run(self, part: str, feed: dict[str, torch.Tensor | np.ndarray]) -> list[torch.Tensor]:
        """Run a part's session; inputs and outputs pass through host memory (numpy), also on CUDA."""
        arrays = {k: v if isinstance(v, np.ndarray) else v.detach().contiguous().cpu().numpy() for k, v in feed.items()}
        outputs = self.sessions[part].run(None, arrays)
        return [torch.from_numpy(o).to(self.device) for o in outputs]

    def forward_step(
        self,
        step_batch: dict[str, torch.Tensor],
        lidar2global: np.ndarray,
        stamp_ns: int,
        stream_id: str = "",
        state: StreamState | None = None,
        timer: StageTimer = NULL_TIMER,
    ) -> StepOutput:
        """One frame (`batch_at` layout, B = 1) with the previous aggregator state, as `TACOcc.forward_step`.

        Stages recorded by `timer`: conditioning, lidar_branch, image_to_volume (onnxruntime), fuser, then warp
        and volume_to_logits (onnxruntime), or with the image part alone temporal and head (PyTorch).
        """
        _check_step_batch(step_batch, self.config)
        if step_batch["images"].shape[0] != 1:
            raise ValueError(f"OrtNetwork: one frame at a time (B = 1), got B = {step_batch['images'].shape[0]}")
        encoder = self.model.encoder
        with timer.stage("conditioning"):
            masks, points, points_batch = encoder.condition(step_batch)
        with timer.stage("lidar_branch"):
            lidar_volume, lidar_occupied = encoder.encode_lidar(points, points_batch, 1)
        with timer.stage("image_to_volume"):
            voxel_index = self._voxel_index(step_batch)
            image_volume, image_occupied, depth_logits = self._run(
                IMAGE_PART,
                {
                    "images": step_batch["images"],
                    "sky_masks": masks,
                    "camera_valid": step_batch["camera_valid"].float(),
                    "voxel_index": voxel_index,
                },
            )
        fc = self.config.fuser
        with timer.stage("fuser"):
            fused, k_stats = encoder.fuser(
                image_volume,
                image_occupied,
                lidar_volume.to(image_volume.dtype),
                lidar_occupied,
                tau_at(None, fc.gumbel_tau, fc.tau_anneal_steps),
                noise_scale_at(None, fc.tau_anneal_steps, fc.noise_fade),
            )
        encoded = EncoderOutput(
            fused=fused,
            image_volume=image_volume,
            lidar_volume=lidar_volume,
            image_occupied=image_occupied,
            lidar_occupied=lidar_occupied,
            depth_logits=depth_logits,
            depth_target=None,
            k_stats=k_stats,
            sky_masks=masks,
            points=points,
            points_batch=points_batch,
        )
        if self.tail is not None:
            with timer.stage("temporal"):
                aggregated = self.tail.temporal.step(fused, lidar2global, stamp_ns, stream_id, state)
            with timer.stage("head"):
                head = self.tail.head(aggregated.features)
            return StepOutput(encoded, aggregated, head)
        temporal = self.model.temporal
        if temporal.cell is None:
            with timer.stage("volume_to_logits"):
                coarse, fine, refined = self._run(HEAD_PART, {"fused": fused.float()})
            return StepOutput(encoded, StepResult(fused, None, None), HeadOutput(coarse, fine, refined))
        pose = np.asarray(lidar2global, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"OrtNetwork.forward_step: expected a (4, 4) lidar2global, got shape {pose.shape}")
        with timer.stage("warp"):
            reason = reset_reason(state, pose, int(stamp_ns), stream_id, temporal.max_gap_s)
            if reason is None and state is not None:
                prev2cur = relative_pose(torch.from_numpy(state.lidar2global), torch.from_numpy(pose))
                both = warp_volume(torch.cat([state.hidden, state.cell], dim=1), prev2cur, temporal.grid)
                hidden, cell = both.float().chunk(2, dim=1)
            else:
                hidden = fused.new_zeros(1, temporal.cell.hidden_channels, *fused.shape[2:], dtype=torch.float32)
                cell = hidden
        with timer.stage("volume_to_logits"):
            hidden, cell, coarse, fine, refined = self._run(
                HEAD_PART, {"fused": fused.float(), "hidden": hidden, "cell": cell}
            )
        new_state = StreamState(hidden, cell, pose.copy(), int(stamp_ns), stream_id)
        return StepOutput(encoded, StepResult(hidden, new_state, reason), HeadOutput(coarse, fine, refined))
