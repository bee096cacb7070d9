import ast
import re

import pytest

from tacocc_core.config import ModelConfig
from tacocc_core.config_reference import walk
from tacocc_core.train.train_config import TrainConfig
from tacocc_ros.node import node_params
from tacocc_ros.tooling.reference_doc import (
    LAUNCH_FILES,
    check_text,
    configuration_markdown,
    launch_arguments,
    main,
    params_file_values,
)
from tacocc_ros.training import training_node


@pytest.fixture(scope="module")
def doc_text(repo_root):
    return (repo_root / "docs" / "CONFIGURATION.md").read_text()


def documented_names(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE)}


def test_configuration_doc_is_up_to_date(doc_text):
    assert doc_text == configuration_markdown(), "docs/CONFIGURATION.md differs from the code: run `make docs`"


def test_every_config_key_and_parameter_is_documented(doc_text):
    names = documented_names(doc_text)
    expected = {d.key for d in walk(ModelConfig)} | {d.key for d in walk(TrainConfig)}
    expected |= set(node_params.NODE_PARAMS) | set(node_params.camera_params("<CAM>"))
    expected |= set(training_node.PARAMS)
    assert not expected - names, f"not in docs/CONFIGURATION.md: {sorted(expected - names)}"


def launch_argument_names_by_ast(path) -> set[str]:
    """Every name a launch file hands to DeclareLaunchArgument or LaunchConfiguration (literal strings)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
            "DeclareLaunchArgument",
            "LaunchConfiguration",
        ):
            if node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_arguments_are_read_from_the_source(path, doc_text):
    found = dict(launch_arguments(path))
    assert launch_argument_names_by_ast(path) <= set(found)
    for name in found:
        assert f"| `{name}` |" in doc_text


def test_tacocc_launch_arguments_match_the_file():
    found = dict(launch_arguments(LAUNCH_FILES[0]))
    assert set(found) == {"params_file", "rviz", "bag", "lifecycle"}
    assert found["rviz"][0] == "false"
    assert found["lifecycle"][0] == "false"
    assert found["params_file"][0] == "<share>/config/occupancy_node.yaml"


def test_params_file_values_flatten_the_camera_section():
    values = params_file_values()
    assert values["model_config"] == "nuscenes_r50_256x704"
    assert values["cameras.CAM_BACK.info_topic"] == "/CAM_BACK/camera_info"


def test_check_text_describes_each_kind_of_check():
    specs = node_params.all_params(("CAM_FRONT",))
    assert check_text(specs["precision"].check) == "one of fp32, bf16, fp16"
    assert check_text(specs["slop_s"].check) == ">= 0.0"
    assert check_text(specs["diagnostics_period_s"].check) == "> 0"
    assert check_text(None) == ""
    with pytest.raises(ValueError, match="no description"):
        check_text(lambda v: None)


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    out = tmp_path / "CONFIGURATION.md"
    assert main([str(out)]) == 0
    assert main(["--check", str(out)]) == 0
    out.write_text(out.read_text().replace("`fuser.mode`", "`fuser.mod`"))
    assert main(["--check", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp"))
