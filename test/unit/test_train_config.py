import dataclasses

import pytest
import yaml

from tacocc_core.config import ConfigError
from tacocc_core.train.train_config import (
    LabelEfficientConfig,
    TrainConfig,
    load_train_config,
    train_config_from_dict,
    train_config_to_dict,
)


def _write(tmp_path, data):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_tiny_schedule_loads_and_spells_out_every_key(repo_root):
    path = repo_root / "config" / "train_tiny.yaml"
    config = load_train_config(path)
    assert not config.bf16 and config.warmup_steps < config.steps
    written = yaml.safe_load(path.read_text())
    assert set(written) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(written["label_efficient"]) == {f.name for f in dataclasses.fields(LabelEfficientConfig)}


def test_defaults_are_the_paper_optimiser():
    config = TrainConfig()
    assert config.lr == 1e-4 and config.weight_decay == 0.01


def test_round_trip():
    config = train_config_from_dict({"steps": 10, "warmup_steps": 2, "label_efficient": {"label_fraction": 0.1}})
    assert train_config_from_dict(train_config_to_dict(config)) == config
    assert config.label_efficient.label_fraction == 0.1 and config.label_efficient.label_mode == "frames"


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    path = _write(tmp_path, {"label_efficient": {"label_fractoin": 0.1}})
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    text = str(info.value)
    assert str(path) in text and "label_efficient.label_fractoin: unknown key" in text and "label_fraction" in text
    with pytest.raises(ConfigError, match="stepz: unknown key; allowed keys here: steps"):
        train_config_from_dict({"stepz": 3})


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"lr": "1e-4"}, "lr"),
        ({"steps": 2.0}, "steps"),
        ({"steps": 0}, "steps"),
        ({"label_efficient": {"label_fraction": 1.5}}, "label_efficient.label_fraction"),
        ({"label_efficient": {"label_mode": "pixels"}}, "label_efficient.label_mode"),
        ({"label_efficient": {"teacher_threshold": 0.0}}, "label_efficient.teacher_threshold"),
        ({"steps": 10, "warmup_steps": 10}, "warmup_steps (10) must be less than steps (10)"),
        ({"label_efficient": {"teacher_weight": 1.0}}, "needs label_efficient.teacher_checkpoint"),
        ({"renderer": False, "label_efficient": {"photometric_weight": 1.0}}, "needs renderer: true"),
    ],
)
def test_bad_values_name_the_key(data, needle):
    with pytest.raises(ConfigError) as info:
        train_config_from_dict(data, source="run.yaml")
    assert "run.yaml" in str(info.value) and needle in str(info.value)


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read training config"):
        load_train_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_train_config(listy)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_train_config(empty) == TrainConfig()
