"""`docs/CONFIGURATION.md`, generated: the model and training configs and the nodes' ROS parameters.

The config keys come from `tacocc_core.config_reference`; the occupancy node's parameters from
`node_params` (defaults, descriptions, read-only flags and value checks) and `config/occupancy_node.yaml`;
the training node's from `training_node.PARAMS`; the launch arguments are read from the launch files'
source (the `launch` package is not needed). A test regenerates the file and compares.

    python -m tacocc_ros.tooling.reference_doc docs/CONFIGURATION.md     # write (make docs)
    python -m tacocc_ros.tooling.reference_doc --check docs/CONFIGURATION.md
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tacocc_core.config import load_preset
from tacocc_core.config_reference import model_reference, train_reference
from tacocc_core.train.eval_report import write_text_atomic
from tacocc_ros.node import node_params
from tacocc_ros.training import training_node

REPO = Path(__file__).resolve().parents[2]
NODE_PARAMS_FILE = REPO / "config" / "occupancy_node.yaml"
LAUNCH_FILES = (REPO / "launch" / "tacocc.launch.py", REPO / "launch" / "train.launch.py")
CAMERA_PLACEHOLDER = "<CAM>"

HEADER = """# Configuration reference

Generated from the code by `make docs` (`python -m tacocc_ros.tooling.reference_doc docs/CONFIGURATION.md`); a test
fails when this file and the code disagree. Do not edit it by hand: change the docstrings, defaults or
preset files and regenerate.

- Model configs are YAML files validated strictly: an unknown key, a wrong type (`"0.5"` is not a float,
  `2.0` is not an int) or a value out of range is refused with the file, the dotted key and what is allowed.
  `tacocc config PRESET` prints a preset with every key filled in.
- Training configs have the same strictness. `tacocc train --set model.KEY=VALUE --set train.KEY=VALUE`
  overrides single keys.
- ROS parameters are checked when the node starts and when they are set while it runs.
"""


def check_text(check: Callable[[Any], str | None] | None) -> str:
    """The allowed values that a `node_params` check function enforces, in words."""
    if check is None:
        return ""
    name = check.__qualname__.split(".")[0]
    cells = dict(zip(check.__code__.co_freevars, (c.cell_contents for c in check.__closure__ or ()), strict=True))
    if name == "_one_of":
        return "one of " + ", ".join(cells["allowed"])
    if name == "_at_least":
        return f">= {cells['low']}"
    fixed = {
        "_positive": "> 0",
        "_device": "auto, cpu, cuda or cuda:N",
        "_file_or_empty": "an existing file or empty",
        "_dir_or_empty": "an existing folder or empty",
        "_topic": "a topic name",
        "_port": "0 (off) or a TCP port 1..65535",
    }
    if name in fixed:
        return fixed[name]
    raise ValueError(f"node_params: no description for the check {check.__qualname__}; add it to check_text")


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def params_file_values(path: Path = NODE_PARAMS_FILE) -> dict[str, Any]:
    """{dotted parameter name: value} of a ROS 2 parameters file (the `/**` or first node section)."""
    data = yaml.safe_load(path.read_text())
    section = data.get("/**", next(iter(data.values())))["ros__parameters"]
    out: dict[str, Any] = {}

    def flatten(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                flatten(value, f"{prefix}{key}.")
            else:
                out[prefix + key] = value

    flatten(section, "")
    return out


def occupancy_node_section() -> str:
    values = params_file_values()
    cameras = load_preset(values["model_config"]).cameras.names
    head = [
        "parameter",
        "type",
        "default",
        "`config/occupancy_node.yaml`",
        "allowed",
        "set while running",
        "what it does",
    ]
    rows = [_row(head), "|" + "---|" * len(head)]
    specs = dict(node_params.NODE_PARAMS)
    specs.update(node_params.camera_params(CAMERA_PLACEHOLDER))
    for name, spec in specs.items():
        if name.startswith("cameras."):
            per_camera = {
                _plain(values.get(name.replace(CAMERA_PLACEHOLDER, cam), "(not set)")).replace(cam, CAMERA_PLACEHOLDER)
                for cam in cameras
            }
            in_file = per_camera.pop() if len(per_camera) == 1 else "differs per camera"
        else:
            in_file = _plain(values[name]) if name in values else "(not set)"
        rows.append(
            _row(
                [
                    f"`{name}`",
                    type(spec.default).__name__,
                    f"`{_plain(spec.default)}`",
                    f"`{in_file}`",
                    check_text(spec.check),
                    "no (restart)" if spec.read_only else "yes",
                    spec.description,
                ]
            )
        )
    return "\n".join(
        [
            "## Occupancy node parameters (`occupancy_node`, `launch/tacocc.launch.py`)",
            "",
            "Declared in `tacocc_ros/node/node_params.py`; every one is spelled out in `config/occupancy_node.yaml`. "
            f"`{CAMERA_PLACEHOLDER}` stands for each camera of the model config "
            f"({', '.join(cameras)} in `{values['model_config']}`).",
            "",
            *rows,
            "",
        ]
    )


def training_node_section() -> str:
    launch_defaults = dict(launch_arguments(LAUNCH_FILES[1]))
    head = ["parameter", "type", "default", "`train.launch.py` default", "what it does"]
    rows = [_row(head), "|" + "---|" * len(head)]
    params = {
        **training_node.PARAMS,
        **training_node.INPUT_PARAMS,
        **training_node.camera_param_defaults(CAMERA_PLACEHOLDER),
    }
    for name, (default, description) in params.items():
        launch_default = launch_defaults.get(name, ("(not an argument)", ""))[0]
        rows.append(
            _row(
                [
                    f"`{name}`",
                    f"list of {type(default[0]).__name__}" if isinstance(default, list) else type(default).__name__,
                    f"`{_plain(default)}`",
                    f"`{_plain(launch_default)}`",
                    description,
                ]
            )
        )
    return "\n".join(
        [
            "## Training node parameters (`training_node`, `launch/train.launch.py`)",
            "",
            "Declared in `tacocc_ros/training/training_node.py`, all read-only (set them at start). The launch file "
            "passes each of its arguments on as the parameter of the same name. The topic and matching parameters "
            "are the occupancy node's (same names and checks), so one params file serves both nodes; "
            f"`{CAMERA_PLACEHOLDER}` stands for each camera of the model config.",
            "",
            *rows,
            "",
        ]
    )


def launch_arguments(path: Path) -> list[tuple[str, tuple[str, str]]]:
    """(name, (default, description)) of the launch arguments a launch file declares, read from its source.

    Either `DeclareLaunchArgument("name", default_value=..., description=...)` calls with literal names, or
    an `ARGUMENTS = {name: (default, description)}` dict that the file declares in a loop.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[str, tuple[str, str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets):
            out += [(k, tuple(v)) for k, v in ast.literal_eval(node.value).items()]
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            if not (node.args and isinstance(node.args[0], ast.Constant)):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            default = kw.get("default_value")
            default_text = _substitution_text(default) if default is not None else ""
            described = kw.get("description")
            description = str(described.value) if isinstance(described, ast.Constant) else ""
            out.append((str(node.args[0].value), (default_text, description)))
    return out


def _substitution_text(node: ast.expr) -> str:
    """A launch default as text: a literal as it is, `PathJoinSubstitution([share, "a"])` as `<share>/a`."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.Name):
        return f"<{node.id}>"
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PathJoinSubstitution" and node.args:
        parts = node.args[0]
        if isinstance(parts, ast.List):
            return "/".join(_substitution_text(p) for p in parts.elts)
    return ast.unparse(node)


def launch_section() -> str:
    lines = [
        "## Launch arguments",
        "",
        "`<share>` is the package's share directory (`share/tacocc_ros` of the install).",
        "",
    ]
    for path in LAUNCH_FILES:
        lines += [f"`ros2 launch tacocc_ros {path.name} NAME:=VALUE ...`", ""]
        lines += [_row(["argument", "default", "what it does"]), "|---|---|---|"]
        for name, (default, description) in launch_arguments(path):
            lines.append(_row([f"`{name}`", f"`{_plain(default)}`", description]))
        lines.append("")
    return "\n".join(lines)


def configuration_markdown() -> str:
    """The whole of docs/CONFIGURATION.md."""
    parts = [HEADER, model_reference(), train_reference(), occupancy_node_section(), training_node_section()]
    parts.append(launch_section())
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tacocc_ros.tooling.reference_doc", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", type=Path, help="the Markdown file (docs/CONFIGURATION.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the code")
    args = parser.parse_args(argv)
    text = configuration_markdown()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out}: out of date with the code; run `make docs`", file=sys.stderr)
            return 1
        return 0
    write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
