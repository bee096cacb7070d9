"""Strict YAML -> typed dataclass validation shared by the model and training configs.

The dataclasses are pydantic dataclasses declared with `STRICT` (frozen, strict types, unknown keys
forbidden). Validation goes through pydantic's JSON mode so that YAML lists fill tuple fields while
`"0.5"` still is not a float. Every error names the source (a file), the dotted key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or value that does not fit the schema."""


def validate_mapping(cls: type[T], data: Any, source: str, what: str = "configuration") -> T:
    """Validate a nested dict (as read from YAML) into `cls`; errors raise ConfigError naming `source`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of {what} settings, got {type(data).__name__}")
    try:
        return TypeAdapter(cls).validate_json(json.dumps(data))
    except ValidationError as err:
        raise ConfigError(_describe(cls, err, f"{source}: invalid {what}")) from None
    except (TypeError, ValueError) as err:  # json.dumps of a YAML value with no JSON form (dates, sets)
        raise ConfigError(f"{source}: {err}") from None


def read_yaml_mapping(path: str | os.PathLike[str], what: str = "config", error: type[Exception] = ConfigError) -> Any:
    """The parsed content of a YAML file ({} for an empty file); unreadable or invalid files raise `error`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise error(f"{path}: cannot read {what} file ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise error(f"{path}: cannot read {what} file (not utf-8 text: {err.reason} at byte {err.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None
    return {} if data is None else data


def to_plain_dict(instance: Any) -> dict[str, Any]:
    """Plain nested dict (lists for tuples) of a config dataclass, the inverse of `validate_mapping`."""
    return json.loads(json.dumps(dataclasses.asdict(instance)))


def _describe(cls: type, err: ValidationError, headline: str) -> str:
    lines = [headline]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        kind = e["type"]
        if kind in ("unexpected_keyword_argument", "extra_forbidden"):
            allowed = ", ".join(_field_names(cls, tuple(p for p in e["loc"][:-1] if isinstance(p, str))))
            lines.append(f"  {loc}: unknown key; allowed keys here: {allowed}")
        elif kind == "value_error":
            lines.append(f"  {loc or '(top level)'}: {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {loc}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _field_names(cls: type, path: tuple[str, ...]) -> list[str]:
    """Field names of the dataclass reached from `cls` by following `path` (empty if it leads elsewhere)."""
    for name in path:
        hint = typing.get_type_hints(cls).get(name)
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return []
        cls = hint
    return [f.name for f in dataclasses.fields(cls)]
