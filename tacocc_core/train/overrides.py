"""`--set key=value` on the command line: dotted keys into a nested config dict, values parsed as YAML.

`model.fuser.mode=none` changes the model config, `train.steps=300` the training config; the result is
validated as strictly as a YAML file (unknown key, wrong type -> ConfigError naming the key).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tacocc_core.config import ConfigError

SECTIONS = ("model", "train")


def parse_override(text: str) -> tuple[str, tuple[str, ...], Any]:
    """'train.label_efficient.geometry_weight=1.0' -> ('train', ('label_efficient', 'geometry_weight'), 1.0)."""
    key, sep, value = text.partition("=")
    parts = tuple(key.strip().split("."))
    if not sep or len(parts) < 2 or parts[0] not in SECTIONS or not all(parts):
        raise ConfigError(
            f"--set {text!r}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(SECTIONS)} "
            "(e.g. model.fuser.mode=none, train.steps=300)"
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {err}") from None
    return parts[0], parts[1:], parsed


def apply_overrides(data: dict[str, Any], section: str, overrides: list[str]) -> dict[str, Any]:
    """A copy of `data` (one config as a nested dict) with the overrides of `section` applied."""
    out = copy.deepcopy(data)
    for text in overrides:
        where, path, value = parse_override(text)
        if where != section:
            continue
        node = out
        for i, part in enumerate(path[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {text!r}: {section}.{'.'.join(path[: i + 1])} is not a section")
            node = node[part]
        if path[-1] not in node:
            raise ConfigError(
                f"--set {text!r}: unknown key {section}.{'.'.join(path)}; allowed keys here: {', '.join(node)}"
            )
        node[path[-1]] = value
    return out
