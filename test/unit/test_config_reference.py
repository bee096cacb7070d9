import dataclasses
import typing
from typing import Annotated, Literal

import pytest
from pydantic import Field
from pydantic.dataclasses import dataclass

from tacocc_core import cli
from tacocc_core.config import PRESETS, ModelConfig, config_to_dict, load_preset
from tacocc_core.config_reference import (
    describe_type,
    docstring_args,
    model_reference,
    train_preset_names,
    train_reference,
    walk,
)
from tacocc_core.strict_yaml import STRICT
from tacocc_core.train.train_config import TrainConfig, load_train_config, train_config_to_dict


def leaf_keys(data: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        out += leaf_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return out


def rows_by_key(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize(
    ("cls", "instance"),
    [(ModelConfig, config_to_dict(ModelConfig())), (TrainConfig, train_config_to_dict(TrainConfig()))],
)
def test_walk_reaches_every_key_and_each_has_a_description(cls, instance):
    docs = list(walk(cls))
    assert [d.key for d in docs] == leaf_keys(instance)
    missing = [d.key for d in docs if not d.description]
    assert not missing, f"fields with no `Args:` entry in their dataclass docstring: {missing}"


def test_docstring_args_splits_grouped_names_and_joins_continuations():
    @dataclass(config=STRICT)
    class Example:
        """Summary.

        Args:
            low, high: the bounds,
                in metres.
            mode: how.
        """

        low: float = 0.0
        high: float = 1.0
        mode: str = "a"

    assert docstring_args(Example) == {
        "low": "the bounds, in metres.",
        "high": "the bounds, in metres.",
        "mode": "how.",
    }


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Annotated[float, Field(gt=0, le=1)], ("float", "> 0, <= 1")),
        (Annotated[int, Field(ge=1)], ("int", ">= 1")),
        (Literal["adaptive", "fixed", "none"], ("str", "one of adaptive, fixed, none")),
        (Literal[8, 16], ("int", "one of 8, 16")),
        (tuple[Annotated[int, Field(ge=1)], ...], ("list of int", "each >= 1")),
        (tuple[float, float], ("list of 2 float", "")),
        (str | None, ("str or null", "")),
        (bool, ("bool", "true, false")),
    ],
)
def test_describe_type(annotation, expected):
    assert describe_type(annotation) == expected


def test_model_reference_has_every_key_with_its_preset_values():
    rows = rows_by_key(model_reference())
    presets = {name: config_to_dict(load_preset(name)) for name in PRESETS}
    for doc in walk(ModelConfig):
        assert doc.key in rows, f"{doc.key} missing from the model reference"
    # columns: key, type, default, one per preset (PRESETS order), allowed, description
    voxel = [f"`{presets[n]['grid']['voxel_size']}`" for n in PRESETS]
    assert rows["grid.voxel_size"][2 : 4 + len(PRESETS)] == ["`0.5`", *voxel, "> 0"]
    assert voxel[:2] == ["`0.5`", "`1.0`"]
    assert rows["image_backbone.depth"][3 : 3 + len(PRESETS)] == [
        f"`{presets[n]['image_backbone']['depth']}`" for n in PRESETS
    ]
    assert rows["fuser.mode"][-2] == "one of adaptive, fixed, none"
    assert rows["renderer.render_scale"][-2] == "> 0, <= 1"


def test_train_reference_has_every_key_and_every_schedule():
    names = train_preset_names()
    assert "train_tiny" in names
    text = train_reference()
    rows = rows_by_key(text)
    for name in names:
        assert f"`{name}`" in text
    tiny = train_config_to_dict(load_train_config(f"config/{names[0]}.yaml"))
    for doc in walk(TrainConfig):
        assert doc.key in rows, f"{doc.key} missing from the training reference"
    assert rows["lr"][3] == f"`{tiny['lr']}`"
    assert rows["label_efficient.label_mode"][-2] == "one of frames, voxels"


def test_a_new_field_shows_up_and_an_undocumented_one_is_caught():
    @dataclass(config=STRICT)
    class Inner:
        """Inner section.

        Args:
            rate: documented.
        """

        rate: Annotated[float, Field(gt=0)] = 1.0
        extra: int = 3

    @dataclass(config=STRICT)
    class Outer:
        """Outer."""

        inner: Inner = dataclasses.field(default_factory=Inner)

    docs = {d.key: d for d in walk(Outer)}
    assert set(docs) == {"inner.rate", "inner.extra"}
    assert docs["inner.rate"].allowed == "> 0" and docs["inner.rate"].default == 1.0
    assert docs["inner.extra"].description == ""


def test_configuration_doc_contains_the_generated_config_reference(repo_root):
    text = (repo_root / "docs" / "CONFIGURATION.md").read_text()
    assert model_reference() in text, "docs/CONFIGURATION.md is out of date with the model config: run `make docs`"
    assert train_reference() in text, "docs/CONFIGURATION.md is out of date with the training config: run `make docs`"


def test_tacocc_config_reference_prints_both_references(capsys):
    assert cli.main(["config", "--reference"]) == 0
    out = capsys.readouterr().out
    assert model_reference() in out and train_reference() in out


@pytest.mark.parametrize("argv", [["config"], ["config", "tiny", "--reference"]])
def test_tacocc_config_needs_exactly_one_of_preset_and_reference(argv, capsys):
    assert cli.main(argv) == 2
    assert "tacocc config: error:" in capsys.readouterr().err


def test_every_annotation_is_described():
    for cls in (ModelConfig, TrainConfig):
        for doc in walk(cls):
            assert "typing." not in doc.type_text and "<class" not in doc.type_text, (doc.key, doc.type_text)
    assert typing.get_type_hints(ModelConfig)  # resolvable, as walk() needs
