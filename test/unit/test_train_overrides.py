import pytest

from tacocc_core.config import ConfigError
from tacocc_core.train.overrides import apply_overrides, parse_override


def test_dotted_keys_are_set_with_yaml_values_in_their_section_only():
    data = {"fuser": {"mode": "adaptive", "fixed_k": 3}, "name": "tiny"}
    out = apply_overrides(data, "model", ["model.fuser.mode=none", "model.fuser.fixed_k=2", "train.steps=5"])
    assert out == {"fuser": {"mode": "none", "fixed_k": 2}, "name": "tiny"}
    assert data["fuser"]["mode"] == "adaptive"  # the input is not modified
    assert parse_override("train.label_efficient.geometry_weight=1e-1") == (
        "train",
        ("label_efficient", "geometry_weight"),
        "1e-1",  # YAML 1.1: no dot before e -> a string
    )
    assert parse_override("train.lr=0.001")[2] == 0.001


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("fuser.mode=none", "SECTION.KEY=VALUE"),
        ("model.fuser.mode", "SECTION.KEY=VALUE"),
        ("model.fuser.k_max=2", "unknown key model.fuser.k_max; allowed keys here: mode, fixed_k"),
        ("model.name.x=1", "model.name is not a section"),
        ("model.fuser.mode=[", "not valid YAML"),
    ],
)
def test_bad_overrides_name_the_key(text, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
        apply_overrides({"fuser": {"mode": "a", "fixed_k": 3}, "name": "t"}, "model", [text])
