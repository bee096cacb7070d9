"""Generated model and training configs and `--set` overrides against tacocc_core/config.py,
tacocc_core/train/train_config.py and tacocc_core/train/overrides.py.

A preset written back and read again is the same config. A config with one key dropped, added or given a
generated value (any YAML scalar, NaN/Inf, lists, mappings, strings that look like numbers), or a YAML file
that is truncated or not text, either validates (the value was one the schema allows) or raises
ConfigError naming the file and the key. Generated `--set` texts either apply or raise ConfigError quoting
the override; nothing else.
"""

from __future__ import annotations

import copy

import fuzz_tally
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tacocc_core.config import ConfigError, config_to_dict, load_config, load_preset
from tacocc_core.train.overrides import apply_overrides
from tacocc_core.train.train_config import load_train_config, train_config_from_dict

BOUNDARY, OVERRIDES = "model/training config", "--set overrides"
MODEL = config_to_dict(load_preset("tiny"))
TRAIN = yaml.safe_load(open(__file__.rsplit("/test/", 1)[0] + "/config/train_tiny.yaml"))  # noqa: SIM115

values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(), st.text(max_size=6),
    st.sampled_from(["0.5", "1e3", "inf", "nan", "true", "[1, 2]"]),
    st.lists(st.one_of(st.integers(-5, 5), st.floats(-5, 5)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)  # fmt: skip


def leaves(data: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in data.items():
        out += leaves(value, (*prefix, key)) if isinstance(value, dict) and value else [(*prefix, key)]
    return out


@st.composite
def mutated(draw, base: dict) -> tuple[str, dict, str]:
    data = copy.deepcopy(base)
    path = draw(st.sampled_from(leaves(data)))
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    kind = draw(st.sampled_from(["good", "value", "drop", "unknown"]))
    if kind == "value":
        holder[path[-1]] = draw(values)
    elif kind == "drop":
        del holder[path[-1]]
    elif kind == "unknown":
        holder[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in holder))] = draw(values)
    return kind, data, ".".join(map(str, path))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("configs")


@given(which=st.sampled_from(["model", "train"]), data=st.data(), damage=st.sampled_from(["none", "cut", "bytes"]))
def test_generated_configs_validate_or_raise_naming_the_file_and_key(folder, which, data, damage):
    kind, config, key = data.draw(mutated(MODEL if which == "model" else TRAIN))
    path = folder / f"{which}.yaml"
    text = yaml.safe_dump(config).encode()
    if damage == "cut":
        text = text[: data.draw(st.integers(0, len(text)))]
        kind = "cut file"
    elif damage == "bytes":
        text = data.draw(st.binary(max_size=80))
        kind = "foreign bytes"
    path.write_bytes(text)
    load = load_config if which == "model" else load_train_config
    outcome = fuzz_tally.check(BOUNDARY, f"{which} {kind}", lambda: load(path), ConfigError)
    assert {p.name for p in folder.iterdir()} <= {"model.yaml", "train.yaml"}  # nothing else written
    if kind == "good":
        assert outcome.error is None, outcome.message
        if which == "model":
            assert config_to_dict(outcome.value) == config
    elif outcome.error is not None:
        assert str(path) in outcome.message
        if kind in ("drop", "unknown"):
            assert key.split(".")[0] in outcome.message or "unknown key" in outcome.message, outcome.message


TRAIN_KEYS = st.sampled_from([".".join(("train", *p)) for p in leaves(TRAIN)])
override_text = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", TRAIN_KEYS, st.text(max_size=12)),
    st.builds(lambda k, v: f"{k}={yaml.safe_dump(v).strip()}", TRAIN_KEYS, values),
    st.text(max_size=30),
    st.builds(lambda s: f"train.{s}=1", st.text(max_size=12)),
)  # fmt: skip


@given(st.lists(override_text, min_size=1, max_size=3))
def test_generated_set_overrides_apply_or_raise_quoting_the_override(overrides):
    def apply():
        return train_config_from_dict(apply_overrides(TRAIN, "train", overrides), source="--set")

    outcome = fuzz_tally.check(OVERRIDES, "texts", apply, ConfigError)
    if outcome.error is not None:
        assert "--set" in outcome.message
