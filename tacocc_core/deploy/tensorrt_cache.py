"""TensorRT engines of the exported parts, built by onnxruntime's TensorRT execution provider, cached on disk.

An engine only runs on the GPU architecture and the TensorRT version that built it, at the precision it
was built for. The cache therefore keeps one folder per `EngineKey` (part hash, compute capability,
TensorRT version, precision), each with a `key.json` stamp saying what it was built for:

- another GPU, TensorRT version or precision finds no folder of its key and builds a new engine;
- a folder whose stamp does not match its name (copied from elsewhere, or half-written) is emptied and
  rebuilt;
- an engine that TensorRT cannot load (a session that fails to start from the folder) gets its folder
  emptied and one more build (`OrtNetwork` does that retry).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

STAMP = "key.json"
TRT_PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class EngineKey:
    """What a TensorRT engine is valid for.

    Args:
        model_sha256: sha256 (hex) of the ONNX bytes the engine was built from.
        compute_capability: (major, minor) of the GPU, e.g. (9, 0).
        tensorrt_version: e.g. "10.3.0".
        precision: "fp32", "fp16" or "bf16" (the kernels TensorRT may choose besides fp32).
    """

    model_sha256: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    precision: str

    def __post_init__(self) -> None:
        if self.precision not in TRT_PRECISIONS:
            raise ValueError(f"TensorRT precision must be one of {TRT_PRECISIONS}, got {self.precision!r}")

    def folder_name(self) -> str:
        major, minor = self.compute_capability
        version = self.tensorrt_version.replace(os.sep, "_")
        return f"{self.model_sha256[:16]}-sm{major}{minor}-trt{version}-{self.precision}"

    def as_json(self) -> dict:
        data = asdict(self)
        data["compute_capability"] = list(self.compute_capability)
        return data


def engine_cache_dir(root: str | os.PathLike[str], key: EngineKey) -> Path:
    """The folder for the engines of `key` under `root`, created; emptied first if its stamp names another key."""
    folder = Path(root) / key.folder_name()
    stamp = folder / STAMP
    if folder.exists() and _read_stamp(stamp) != key.as_json():
        discard_engines(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file():
        _write_atomic(stamp, json.dumps(key.as_json(), indent=2) + "\n")
    return folder


def discard_engines(folder: str | os.PathLike[str]) -> None:
    """Delete a cache folder and everything in it (an engine that does not load is rebuilt next time)."""
    shutil.rmtree(folder, ignore_errors=True)


def tensorrt_version() -> str | None:
    """The version of the installed TensorRT Python package (the libraries the execution provider loads), or None."""
    try:
        import tensorrt
    except ImportError:
        return None
    return str(tensorrt.__version__)


def provider_options(folder: Path, precision: str) -> dict[str, str]:
    """Options of onnxruntime's TensorRT execution provider: engine + timing cache in `folder`, `precision` kernels."""
    options = {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(folder),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(folder),
        "trt_fp16_enable": "True" if precision == "fp16" else "False",
    }
    if precision == "bf16":  # an option of newer onnxruntime releases only: named only when asked for
        options["trt_bf16_enable"] = "True"
    return options


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
