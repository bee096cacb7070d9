import dataclasses
from pathlib import Path

import pytest
import yaml

from tacocc_core.config import (
    PRESETS,
    ConfigError,
    ModelConfig,
    config_from_dict,
    config_to_dict,
    diff_configs,
    load_config,
    load_preset,
)


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tiny_dict() -> dict:
    return config_to_dict(load_preset("tiny"))


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_spell_out_every_key(name, repo_root):
    path = repo_root / "config" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    config = load_config(path)
    assert config.name == name
    # Every field of every section is written in the file (presets read top to bottom).
    assert raw == config_to_dict(config)


def test_nuscenes_preset_geometry():
    config = load_preset("nuscenes_r50_256x704")
    assert config.grid.spec().shape == (200, 200, 16)
    assert config.cameras.image_size == (256, 704)
    assert len(config.cameras.names) == 6
    assert config.image_backbone.depth == 50
    assert config.fuser.k_candidates == (1, 2, 3)
    assert config.temporal.window == 5


def test_tiny_preset_is_small():
    config = load_preset("tiny")
    nx, ny, nz = config.grid.spec().shape
    assert nx * ny * nz <= 48 * 48 * 8
    h, w = config.cameras.image_size
    assert h * w <= 64 * 176


def test_demo_preset_is_tiny_with_a_shorter_trunk_and_the_papers_inner_fit():
    changed = set(diff_configs(load_preset("tiny"), load_preset("demo")))
    renderer = {k for k in changed if k.startswith("renderer.")}
    assert changed - renderer == {"name", "image_backbone.stages"}
    assert load_preset("demo").image_backbone.stages == 2
    # tiny, the preset of the tests, keeps a cheap fixed 10-step loop; demo fits to convergence as the paper does.
    fit = ("inner_steps", "inner_lr_schedule", "inner_tolerance", "pc_reduction", "neighbour_frames")
    assert renderer == {f"renderer.{k}" for k in fit}
    demo = load_preset("demo").renderer
    assert (demo.inner_lr_schedule, demo.pc_reduction, demo.neighbour_frames) == ("3dgs", "sum", None)


def test_defaults_equal_nuscenes_preset():
    assert diff_configs(ModelConfig(), load_preset("nuscenes_r50_256x704")) == []


def test_round_trip_and_diff():
    tiny = load_preset("tiny")
    assert config_from_dict(config_to_dict(tiny)) == tiny
    changed = dataclasses.replace(tiny, fuser=dataclasses.replace(tiny.fuser, fixed_k=2))
    assert diff_configs(tiny, changed) == ["fuser.fixed_k"]


def test_missing_keys_take_defaults(tmp_path):
    config = load_config(write(tmp_path, {"name": "partial", "grid": {"voxel_size": 1.0}}))
    assert config.grid.voxel_size == 1.0
    assert config.grid.spec().shape == (100, 100, 8)
    assert config.image_backbone.depth == 50


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    data = tiny_dict()
    data["fuser"]["k_max"] = 4
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "fuser.k_max" in msg
    assert "unknown key" in msg
    assert "k_candidates" in msg and "search_radius" in msg  # the allowed keys


def test_unknown_section(tmp_path):
    data = tiny_dict()
    data["optimizer"] = {"lr": 1e-4}
    with pytest.raises(ConfigError, match=r"optimizer: unknown key; allowed keys here: name, grid"):
        load_config(write(tmp_path, data))


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("grid", "voxel_size", "0.5", "grid.voxel_size: Input should be a valid number"),
        (
            "image_backbone",
            "fpn_channels",
            32.0,
            "image_backbone.fpn_channels: Input should be a valid integer",
        ),
        ("temporal", "enabled", "yes", "temporal.enabled: Input should be a valid boolean"),
        ("cameras", "image_size", [64, 176, 3], "cameras.image_size: Tuple should have at most 2 items"),
    ],
)
def test_wrong_type(tmp_path, section, key, value, expected):
    data = tiny_dict()
    data[section][key] = value
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("grid", "voxel_size", 0.0, "grid.voxel_size: Input should be greater than 0"),
        ("image_backbone", "depth", 152, "image_backbone.depth: Input should be 18, 34, 50 or 101"),
        ("fuser", "mode", "knn", "fuser.mode: Input should be 'adaptive', 'fixed' or 'none'"),
        ("renderer", "dssim_lambda", 1.5, "renderer.dssim_lambda: Input should be less than or equal to 1"),
        ("temporal", "window", 0, "temporal.window: Input should be greater than or equal to 1"),
    ],
)
def test_out_of_range(tmp_path, section, key, value, expected):
    data = tiny_dict()
    data[section][key] = value
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"grid": {"x_range": [10.0, -10.0]}}, "grid.x_range must be (lower, upper) with upper > lower"),
        ({"grid": {"voxel_size": 0.3}}, "not a positive whole number of voxels"),
        ({"head": {"coarse_downsample": 3}}, "must be divisible by head.coarse_downsample=3"),
        ({"fuser": {"k_candidates": [3, 1]}}, "fuser.k_candidates must be distinct and increasing"),
        ({"head": {"cascade_ratio": 4}}, "head.cascade_ratio=4 must equal head.coarse_downsample=2"),
        ({"loss": {"class_weights": [1.0, 2.0]}}, "loss.class_weights needs 17 values"),
        (
            {"image_backbone": {"stages": 2, "feature_stride": 16}},
            "image_backbone.feature_stride=16 needs a deeper trunk: image_backbone.stages=2 ends at stride 8",
        ),
    ],
)
def test_cross_field_rules(tmp_path, patch, expected):
    data = tiny_dict()
    for section, values in patch.items():
        data[section].update(values)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_config(listy)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'huge': known presets are nuscenes_r50_256x704, tiny"):
        load_preset("huge")


def test_config_is_immutable():
    config = load_preset("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.grid.voxel_size = 2.0
