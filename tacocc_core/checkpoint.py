"""Checkpoint files: weights + the model config + a format version, in one file written atomically.

Loading uses `torch.load(..., weights_only=True)`: a checkpoint is data, never code. The config travels as a
plain dict so that a file can be checked against the config a user asks for before any weight is touched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from tacocc_core.checkpoint_error import CheckpointError
from tacocc_core.config import ConfigError, ModelConfig, config_from_dict, config_to_dict, diff_configs

FORMAT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike[str], state_dict: dict[str, Any], config: ModelConfig, **extra: Any
) -> None:
    """Write {format_version, config, model, **extra} to `path` via a temp file in the same folder + rename.

    `extra` holds plain data (step, optimiser state, RNG state, metrics); it must be loadable with
    weights_only=True (tensors, numbers, strings, lists, dicts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "config": config_to_dict(config), "model": state_dict, **extra}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the envelope of a checkpoint file; returns the payload dict with `config` validated.

    CheckpointError for an unreadable file, a payload without format_version 1, or a `model` entry that is
    not a mapping of weight name -> tensor, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{path}: not a tacocc checkpoint (no format_version)")
    version = payload["format_version"]
    if type(version) is not int or version != FORMAT_VERSION:  # a tensor or a string is no format number
        raise CheckpointError(
            f"{path}: checkpoint format {version!r} is not supported (this version reads {FORMAT_VERSION})"
        )
    for key in ("config", "model"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint has no '{key}' entry")
    model = payload["model"]
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: 'model' is not a mapping of weight name -> tensor ({type(model).__name__})")
    for name, value in model.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: 'model' entry {name!r} is {type(value).__name__}, expected a tensor under a string name"
            )
    try:
        payload["config"] = config_from_dict(fuser_as_trained(payload["config"]), source=f"{path} (embedded config)")
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    return payload


# The fuser of checkpoints written before these keys existed: context terms in F_IL, the query's own voxel
# never retrieved, the Gumbel noise faded out over tau_anneal_steps.
FUSER_BEFORE_EQ1 = {"context_terms": True, "exclude_own_voxel": True, "noise_fade": True}


def fuser_as_trained(config: Any) -> Any:
    """An embedded config dict with the fuser keys it lacks set to what the network was trained with."""
    if not isinstance(config, dict) or not isinstance(config.get("fuser"), dict):
        return config
    missing = {key: value for key, value in FUSER_BEFORE_EQ1.items() if key not in config["fuser"]}
    return {**config, "fuser": {**config["fuser"], **missing}} if missing else config


# Keys that do not change the network's weights or outputs: a checkpoint may differ from the request there.
INFERENCE_IRRELEVANT = ("name", "loss", "renderer")


def load_checkpoint(
    path: str | os.PathLike[str], expected: ModelConfig | None = None, ignore: tuple[str, ...] = ("name",)
) -> dict[str, Any]:
    """Read a checkpoint; when `expected` is given, refuse one whose config differs, naming the keys.

    Args:
        ignore: top-level config keys (or dotted prefixes) left out of the comparison.
    """
    payload = read_checkpoint(path)
    if expected is not None:
        differing = [
            key
            for key in diff_configs(expected, payload["config"])
            if not any(key == prefix or key.startswith(prefix + ".") for prefix in ignore)
        ]
        if differing:
            raise CheckpointError(
                f"{path}: checkpoint config does not match the requested config {expected.name!r}; "
                f"differing keys: {', '.join(differing)}"
            )
    return payload


# What an exported checkpoint keeps besides weights and config: where it came from, not how to resume it.
PROVENANCE_KEYS = ("step", "metric", "best_metric", "train_config")


def export_weights(
    source: str | os.PathLike[str], target: str | os.PathLike[str], half: bool = False
) -> dict[str, Any]:
    """Write the weights and config of a (training) checkpoint to `target`, without optimiser, scheduler or RNG.

    The result is what the node and `Predictor` load; `half` stores floating-point weights as float16 (they are
    cast back to the model's dtype on load). Returns the provenance entries that were kept.
    """
    payload = read_checkpoint(source)
    if Path(source).resolve() == Path(target).resolve():
        raise CheckpointError(f"{target}: export target is the source checkpoint itself")
    state = {
        name: (t.half() if half and t.is_floating_point() else t).contiguous().clone()
        for name, t in payload["model"].items()
    }
    kept = {key: payload[key] for key in PROVENANCE_KEYS if key in payload}
    save_checkpoint(target, state, payload["config"], exported_from=Path(source).name, **kept)
    return kept
