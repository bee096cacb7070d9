"""launch/train.launch.py against the parameters training_node really declares and the installed entry point."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from tacocc_ros.training.training_node import PARAMS

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "train.launch.py"


def launch_arguments() -> dict:
    tree = ast.parse(LAUNCH.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ARGUMENTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("no ARGUMENTS in train.launch.py")


def test_launch_arguments_are_the_node_parameters():
    assert set(launch_arguments()) == set(PARAMS)


def test_launch_defaults_match_the_node_defaults():
    for name, (default, _) in launch_arguments().items():
        node_default = PARAMS[name][0]
        if isinstance(node_default, list):
            continue
        assert default.lower() == str(node_default).lower(), name


def test_entry_point_is_installed():
    assert '"training_node = tacocc_ros.training.training_node:main"' in (REPO / "setup.py").read_text()


def test_launch_description_loads_where_ros_launch_is_installed():
    try:
        from launch_ros.actions import Node  # noqa: F401
    except ImportError as err:
        pytest.skip(f"the ROS launch / launch_ros packages are not importable (not on PyPI): {err}")
    spec = importlib.util.spec_from_file_location("train_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description().entities
