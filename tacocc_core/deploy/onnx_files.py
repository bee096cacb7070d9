"""ONNX files of a network's exportable parts: export (`tacocc export --onnx`), metadata, and the checks on load.

An export is a folder:

    image_to_volume.onnx    image branch + view transform (`parts.ImageToVolume`)
    volume_to_logits.onnx   ConvLSTM cell + cascaded head (`parts.VolumeToLogits`)
    weights.pt              the weights-only checkpoint (the PyTorch parts: LiDAR branch, fuser)
    export.json             what was exported, from what, with which versions

Each ONNX file carries in its metadata the part it holds, the network config's hash and name (the
preset), the hash of the weights it was exported from, the opset and a format version, so that a file
of another network, another part or other weights is refused with an error that names the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, save_checkpoint
from tacocc_core.config import ModelConfig, config_to_dict
from tacocc_core.model.tacocc import TACOcc

OPSET = 17
FORMAT = "1"
IMAGE_PART = "image_to_volume"
HEAD_PART = "volume_to_logits"
PARTS = (IMAGE_PART, HEAD_PART)
WEIGHTS_FILE = "weights.pt"
MANIFEST_FILE = "export.json"

IMAGE_INPUTS = ("images", "sky_masks", "camera_valid", "voxel_index")
IMAGE_OUTPUTS = ("image_volume", "image_occupied", "depth_logits")
HEAD_INPUTS_TEMPORAL = ("fused", "hidden", "cell")
HEAD_OUTPUTS_TEMPORAL = ("hidden_out", "cell_out", "coarse_logits", "fine_logits", "refined")
HEAD_INPUTS = ("fused",)
HEAD_OUTPUTS = ("coarse_logits", "fine_logits", "refined")

# Config keys that do not change the exported graphs: the local path a backbone was initialised from
# and what INFERENCE_IRRELEVANT lists (name, loss, renderer).
_HASH_IGNORED = (*INFERENCE_IRRELEVANT, "image_backbone.pretrained")


class OnnxModelError(ValueError):
    """An ONNX file that is missing, unreadable, or not the part of this network; the message names the file."""


def config_hash(config: ModelConfig) -> str:
    """sha256 (hex) of the config keys that shape the network's graphs and weights."""
    data = config_to_dict(config)
    for key in _HASH_IGNORED:
        *parents, leaf = key.split(".")
        node = data
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def part_modules(model: TACOcc) -> dict[str, torch.nn.Module]:
    """The exportable part modules of `model` (sharing its weights), in eval mode."""
    from tacocc_core.deploy.parts import ImageToVolume, VolumeToLogits

    return {IMAGE_PART: ImageToVolume(model).eval(), HEAD_PART: VolumeToLogits(model).eval()}


def weights_hash(module: torch.nn.Module) -> str:
    """sha256 (hex) of a module's parameters and buffers, by name, as float32/int64 bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu()
        t = t.float() if t.is_floating_point() else t.long()
        digest.update(name.encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class PartMetadata:
    """What an exported part's ONNX metadata says (`tacocc.*` keys)."""

    part: str
    config_sha256: str
    preset: str
    weights_sha256: str
    opset: int
    format: str

    def as_props(self) -> dict[str, str]:
        return {
            "tacocc.part": self.part,
            "tacocc.config_sha256": self.config_sha256,
            "tacocc.preset": self.preset,
            "tacocc.weights_sha256": self.weights_sha256,
            "tacocc.opset": str(self.opset),
            "tacocc.format": self.format,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], where: str) -> PartMetadata:
        """Parse the `tacocc.*` metadata of an ONNX file; OnnxModelError naming `where` when it has none."""
        if "tacocc.part" not in props:
            raise OnnxModelError(
                f"{where}: not a part of a tacocc network (no tacocc metadata); write one with `tacocc export --onnx`"
            )
        try:
            return cls(
                part=props["tacocc.part"],
                config_sha256=props["tacocc.config_sha256"],
                preset=props["tacocc.preset"],
                weights_sha256=props["tacocc.weights_sha256"],
                opset=int(props["tacocc.opset"]),
                format=props["tacocc.format"],
            )
        except (KeyError, ValueError) as err:
            raise OnnxModelError(f"{where}: incomplete tacocc metadata ({type(err).__name__}: {err})") from None


def expected_metadata(model: TACOcc, part: str, module: torch.nn.Module) -> PartMetadata:
    """The metadata an export of `part` of `model` (with its current weights) carries."""
    return PartMetadata(part, config_hash(model.config), model.config.name, weights_hash(module), OPSET, FORMAT)


def check_metadata(found: PartMetadata, expected: PartMetadata, where: str) -> None:
    """Raise OnnxModelError naming `where` when an ONNX file's metadata does not fit the network it should run."""
    if found.format != expected.format:
        raise OnnxModelError(f"{where}: tacocc ONNX format {found.format}, this version reads {expected.format}")
    if found.part != expected.part:
        raise OnnxModelError(f"{where}: holds the part {found.part!r}, expected {expected.part!r}")
    if found.config_sha256 != expected.config_sha256:
        raise OnnxModelError(
            f"{where}: exported from another network (preset {found.preset!r}, config sha256 "
            f"{found.config_sha256[:12]}), this one is {expected.preset!r} ({expected.config_sha256[:12]}); "
            "export this network with `tacocc export --onnx`"
        )
    if found.weights_sha256 != expected.weights_sha256:
        raise OnnxModelError(
            f"{where}: exported from other weights of network {found.preset!r} (weights sha256 "
            f"{found.weights_sha256[:12]}, loaded {expected.weights_sha256[:12]}); export the checkpoint again"
        )


def example_inputs(model: TACOcc, part: str) -> tuple[torch.Tensor, ...]:
    """Inputs that trace `part`: a frame of the synthetic camera rig (B = 1)."""
    from tacocc_core.deploy.parts import feature_size, frustum_voxel_index
    from tacocc_core.synthetic_batch import camera_rig

    config = model.config
    v = len(config.cameras.names)
    h, w = config.cameras.image_size
    if part == IMAGE_PART:
        cam2img, cam2lidar = camera_rig(config)
        cam2img, cam2lidar = cam2img.expand(1, v, 3, 3), cam2lidar.expand(1, v, 4, 4)
        feat_hw = feature_size((h, w), config.image_backbone.feature_stride)
        index = frustum_voxel_index(model.encoder.view_transform, cam2img, cam2lidar, feat_hw, (h, w))
        images = torch.zeros(1, v, 3, h, w, dtype=torch.uint8)
        return images, torch.zeros(1, v, h, w, dtype=torch.bool), torch.ones(1, v), index
    grid = model.temporal.grid.shape
    fused = torch.zeros(1, config.fuser.channels, *grid)
    if model.temporal.cell is None:
        return (fused,)
    state = torch.zeros(1, model.temporal.cell.hidden_channels, *grid)
    return fused, state, state.clone()


def export_part_bytes(model: TACOcc, part: str) -> tuple[bytes, PartMetadata]:
    """One part of an eval-mode network as a serialised ONNX model (opset 17) with its tacocc metadata."""
    import onnx

    if model.training:
        raise ValueError("export: the network must be in eval mode")
    module = part_modules(model)[part]
    metadata = expected_metadata(model, part, module)
    temporal = model.temporal.cell is not None
    names: tuple[str, ...]
    outputs: tuple[str, ...]
    if part == IMAGE_PART:
        names, outputs = IMAGE_INPUTS, IMAGE_OUTPUTS
    else:
        names = HEAD_INPUTS_TEMPORAL if temporal else HEAD_INPUTS
        outputs = HEAD_OUTPUTS_TEMPORAL if temporal else HEAD_OUTPUTS
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on shapes it records as constants (the parts are traced at B = 1, one grid) and
        # the notice that the TorchScript-based exporter is the legacy one
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            example_inputs(model, part),
            buffer,  # type: ignore[arg-type]  # a file object is accepted as well as a path
            dynamo=False,
            opset_version=OPSET,
            input_names=list(names),
            output_names=list(outputs),
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.as_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "tacocc"
    return proto.SerializeToString(), metadata


def export_onnx(model: TACOcc, out_dir: str | os.PathLike[str], source: str = "") -> dict[str, Any]:
    """Write the export folder (see the module doc) for an eval-mode network; returns the manifest.

    The folder is written under a temporary name beside `out_dir` and renamed into place: an interrupted
    export leaves the previous folder (or none), never a mix.
    """
    import onnx

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's folder is private; the export is an ordinary folder
    try:
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "preset": model.config.name,
            "config_sha256": config_hash(model.config),
            "opset": OPSET,
            "source": source,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "parts": {},
        }
        for part in PARTS:
            data, metadata = export_part_bytes(model, part)
            (tmp / f"{part}.onnx").write_bytes(data)
            manifest["parts"][part] = {"file": f"{part}.onnx", "weights_sha256": metadata.weights_sha256}
        save_checkpoint(tmp / WEIGHTS_FILE, model.state_dict(), model.config, exported_from=source or "memory")
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _replace_folder(new: Path, target: Path) -> None:
    """Put the folder `new` at `target`, moving an existing `target` aside first and deleting it after."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_part_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an ONNX file; OnnxModelError naming it when it is missing or not readable."""
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path}: ONNX file not found")
    try:
        return path.read_bytes()
    except OSError as err:
        raise OnnxModelError(f"{path}: cannot read ({err})") from None
