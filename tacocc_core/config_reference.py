"""A Markdown reference of every model and training config key, generated from the dataclasses.

Per key: the YAML type, the default, the value in each preset file, the allowed values (from the
pydantic constraints and `Literal` choices of the field's annotation) and the description from the
`Args:` section of the dataclass docstring (a nested section is described by its class's first line).
Nothing here is written by hand, so `docs/CONFIGURATION.md` cannot drift from the code: a test
regenerates it and compares.

    tacocc config --reference          # prints model_reference() + train_reference()
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic.fields import FieldInfo

from tacocc_core.config import PRESETS, ModelConfig, config_to_dict, load_preset
from tacocc_core.train.train_config import TrainConfig, load_train_config, train_config_to_dict

SOURCE_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
_CONSTRAINT_SYMBOLS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


@dataclass(frozen=True)
class KeyDoc:
    """One leaf key of a config dataclass.

    Args:
        key: dotted key as written in YAML (`fuser.mode`).
        type_text: the YAML type (`int`, `list of 3 float`, `str or null`).
        allowed: constraints and choices ("" when any value of the type is accepted).
        description: what the key does, from the dataclass docstring.
        default: the dataclass default, as plain data (`dataclasses.MISSING` when required).
    """

    key: str
    type_text: str
    allowed: str
    description: str
    default: Any


def docstring_args(cls: type) -> dict[str, str]:
    """{field name: text} from the `Args:` section of a class docstring.

    An entry `a, b: text` documents both fields; continuation lines (indented deeper) are joined.
    """
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    if "Args:" not in lines:
        return out
    current: list[str] = []
    names: list[str] = []
    entry = re.compile(r"^    ([A-Za-z_][\w, ]*):\s*(.*)$")
    for line in lines[lines.index("Args:") + 1 :]:
        if not line.strip():
            continue
        if match := entry.match(line):
            for name in names:
                out[name] = " ".join(current)
            names = [n.strip() for n in match.group(1).split(",")]
            current = [match.group(2).strip()]
        elif line.startswith("     ") and names:
            current.append(line.strip())
        else:
            break
    for name in names:
        out[name] = " ".join(current)
    return out


def summary_line(cls: type) -> str:
    """The first line of a class docstring."""
    return (inspect.getdoc(cls) or "").splitlines()[0] if inspect.getdoc(cls) else ""


def _constraints(metadata: list[Any]) -> list[str]:
    out = []
    for item in metadata:
        for attr, symbol in _CONSTRAINT_SYMBOLS:
            if hasattr(item, attr):
                out.append(f"{symbol} {getattr(item, attr)}")
    return out


def describe_type(annotation: Any) -> tuple[str, str]:
    """(YAML type, allowed values) of a field annotation, e.g. ("float", "> 0, <= 1")."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base, *meta = args
        type_text, allowed = describe_type(base)
        constraints = [c for m in meta if isinstance(m, FieldInfo) for c in _constraints(m.metadata)]
        constraints += _constraints([m for m in meta if not isinstance(m, FieldInfo)])
        return type_text, ", ".join(([allowed] if allowed else []) + constraints)
    if origin is Literal:
        kinds = sorted({type(a).__name__ for a in args})
        return " or ".join(kinds), "one of " + ", ".join(_plain(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        type_text, allowed = describe_type(parts[0]) if len(parts) == 1 else (" or ".join(map(str, parts)), "")
        return (f"{type_text} or null", allowed) if len(parts) < len(args) else (type_text, allowed)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item_type, item_allowed = describe_type(args[0])
            return f"list of {item_type}", f"each {item_allowed}" if item_allowed else ""
        described = [describe_type(a) for a in args]
        item_types = {t for t, _ in described}
        allowed_texts = {a for _, a in described}
        type_text = f"list of {len(args)} {item_types.pop()}" if len(item_types) == 1 else f"list ({len(args)} items)"
        if len(allowed_texts) == 1:
            single = allowed_texts.pop()
            return type_text, f"each {single}" if single else ""
        return type_text, "; ".join(f"item {i}: {a or 'any'}" for i, (_, a) in enumerate(described))
    if annotation is bool:
        return "bool", "true, false"
    if isinstance(annotation, type):
        return annotation.__name__, ""
    return str(annotation), ""


def walk(cls: type, prefix: str = "") -> Iterator[KeyDoc]:
    """Every leaf key of a config dataclass, depth first, in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = docstring_args(cls)
    for field in dataclasses.fields(cls):
        annotation = hints[field.name]
        key = f"{prefix}{field.name}"
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            yield from walk(annotation, key + ".")
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        type_text, allowed = describe_type(annotation)
        yield KeyDoc(key, type_text, allowed, docs.get(field.name, ""), _to_plain(default))


def sections(cls: type) -> list[tuple[str, str]]:
    """(section name, description) of the nested dataclasses of `cls`; "" is the top level."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = [("", summary_line(cls))]
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            out.append((field.name, summary_line(hints[field.name])))
    return out


def lookup(data: dict[str, Any], key: str) -> Any:
    """The value at a dotted key of a nested dict."""
    for part in key.split("."):
        data = data[part]
    return data


def _to_plain(value: Any) -> Any:
    if value is dataclasses.MISSING:
        return value
    return json.loads(json.dumps(value))


def _plain(value: Any) -> str:
    """A value as it is written in YAML: strings bare (empty as ""), lists in flow style."""
    if value is dataclasses.MISSING:
        return "required"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(cls: type, presets: dict[str, dict[str, Any]], section_of_interest: str | None) -> list[str]:
    head = ["key", "type", "default", *(f"`{name}`" for name in presets), "allowed", "what it does"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for doc in walk(cls):
        section = doc.key.split(".")[0] if "." in doc.key else ""
        if section != section_of_interest:
            continue
        values = [f"`{_plain(lookup(p, doc.key))}`" for p in presets.values()]
        cells = [f"`{doc.key}`", doc.type_text, f"`{_plain(doc.default)}`", *values, doc.allowed, doc.description]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _reference(cls: type, title: str, intro: str, presets: dict[str, dict[str, Any]]) -> str:
    lines = [f"## {title}", "", intro, ""]
    for section, summary in sections(cls):
        if section:
            lines += [f"### `{section}`", "", summary, ""]
        rows = _table(cls, presets, section)
        if len(rows) > 2:
            lines += rows + [""]
    return "\n".join(lines)


def train_preset_names() -> list[str]:
    """The training schedules shipped under `config/` (`train_*.yaml`), by name."""
    return sorted(p.stem for p in SOURCE_CONFIG_DIR.glob("train_*.yaml"))


def model_reference() -> str:
    """Markdown: every key of `ModelConfig`, with the values of the presets in `config/`."""
    presets = {name: config_to_dict(load_preset(name)) for name in PRESETS}
    intro = (
        "Typed dataclasses in `tacocc_core/config.py`; presets "
        + ", ".join(f"`config/{n}.yaml`" for n in PRESETS)
        + ". A key left out of a file takes the default. Rules across keys are checked in "
        "`ModelConfig._check_consistency` (grid ranges increasing and divisible by `head.coarse_downsample`, "
        "`head.cascade_ratio` equal to it, `image_backbone.feature_stride` within the kept `image_backbone.stages`, "
        "`fuser.k_candidates` increasing, 17 `loss.class_weights` or none, ...)."
    )
    return _reference(ModelConfig, "Model config (`tacocc config PRESET`, `tacocc train --config`)", intro, presets)


def train_reference() -> str:
    """Markdown: every key of `TrainConfig`, with the values of the `config/train_*.yaml` schedules."""
    names = train_preset_names()
    presets = {name: train_config_to_dict(load_train_config(SOURCE_CONFIG_DIR / f"{name}.yaml")) for name in names}
    intro = (
        "Typed dataclasses in `tacocc_core/train/train_config.py`; schedules "
        + ", ".join(f"`config/{n}.yaml`" for n in names)
        + ". Rules across keys are checked in `TrainConfig.__post_init__` (`warmup_steps` < `steps`, a "
        "teacher weight needs a teacher checkpoint, a photometric weight needs `renderer: true`). "
        "`tacocc train --set train.KEY=VALUE` overrides one key."
    )
    return _reference(TrainConfig, "Training config (`tacocc train --train-config`)", intro, presets)
