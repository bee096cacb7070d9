"""tacocc_ros.node.node_params: the parameter table, its checks, config/occupancy_node.yaml naming each one."""

from pathlib import Path

import pytest
import yaml

from tacocc_core.config import NUSCENES_CAMERAS
from tacocc_ros.node.node_params import all_params, camera_inputs, check_parameter

REPO = Path(__file__).resolve().parents[2]


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def test_the_params_file_names_every_parameter_with_its_default():
    data = yaml.safe_load((REPO / "config" / "occupancy_node.yaml").read_text())
    values = flatten(data["/**"]["ros__parameters"])
    specs = all_params(NUSCENES_CAMERAS)
    assert set(values) == set(specs)
    for name, spec in specs.items():
        assert values[name] == spec.default, name
        assert check_parameter(specs, name, values[name]) is None, name


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("slop_s", -0.1, "slop_s: must be >= 0.0"),
        ("slop_s", "fast", "slop_s: expected float, got str"),
        ("device", "tpu", "device: must be auto, cpu, cuda or cuda:N"),
        ("precision", "int8", "precision: must be one of fp32, bf16, fp16"),
        ("checkpoint", "/nonexistent/model.pt", "checkpoint: file '/nonexistent/model.pt' not found"),
        ("cameras.CAM_BACK.transport", "theora", "transport: must be one of compressed, raw"),
        ("min_cameras", True, "min_cameras: expected int, got bool"),
        ("decode_threads", 0, "decode_threads: must be >= 1"),
    ],
)
def test_bad_values_are_refused_with_a_reason(name, value, reason):
    got = check_parameter(all_params(NUSCENES_CAMERAS), name, value)
    assert got is not None and reason in got


def test_good_values_pass_and_ints_are_fine_for_floats():
    specs = all_params(NUSCENES_CAMERAS)
    assert check_parameter(specs, "slop_s", 0) is None
    assert check_parameter(specs, "device", "cuda:1") is None
    assert check_parameter(specs, "use_sim_time", True) is None  # not ours


def test_camera_inputs_convert_offsets_to_nanoseconds():
    specs = all_params(("CAM_FRONT",))
    values = {name: spec.default for name, spec in specs.items()}
    values["cameras.CAM_FRONT.offset_s"] = -0.0125
    (cam,) = camera_inputs(values, ("CAM_FRONT",))
    assert cam.offset_ns == -12_500_000 and cam.image_topic == "/CAM_FRONT/image_rect/compressed"
