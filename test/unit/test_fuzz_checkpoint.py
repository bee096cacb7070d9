"""Generated checkpoint files against tacocc_core/checkpoint.py (`load_checkpoint`, what the node and Predictor load).

A well-formed checkpoint (random weights, the tiny config, extra plain entries) loads to the same tensors.
Malformed files (truncated at any byte, a flipped byte, foreign bytes, a pickle of something that is not
weights, a payload that is not a dict, no or another format_version of any type, a config that is not one,
weights that are not a name -> tensor mapping, another network's config) raise CheckpointError naming the
file; loading never runs code from the file and never writes one.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import pickle

import fuzz_tally
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tacocc_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tacocc_core.config import config_to_dict, load_preset

BOUNDARY = "checkpoint"
TINY = load_preset("tiny")
DEMO = load_preset("demo")


@st.composite
def weights(draw) -> dict[str, torch.Tensor]:
    names = draw(st.lists(st.from_regex(r"[a-z]{1,6}(\.[a-z0-9]{1,4}){0,2}", fullmatch=True), max_size=4, unique=True))
    out = {}
    for name in names:
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool]))
        out[name] = (
            torch.zeros(shape, dtype=dtype)
            if dtype == torch.bool
            else torch.arange(int(torch.tensor(shape).prod()) if shape else 1).reshape(shape).to(dtype)
        )
    return out


def saved_bytes(payload) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def envelope(model) -> dict:
    return {"format_version": 1, "config": config_to_dict(TINY), "model": model}


@st.composite
def bad_checkpoints(draw) -> tuple[str, bytes]:
    state = draw(weights())
    good = saved_bytes(envelope(state))
    kind = draw(st.sampled_from(["truncated", "flipped", "foreign", "not_weights_pickle", "not_a_dict", "no_version",
                                 "version", "config", "model", "another_network"]))  # fmt: skip
    if kind == "truncated":
        return kind, good[: draw(st.integers(0, len(good) - 1))]
    if kind == "flipped":
        at = draw(st.integers(0, len(good) - 1))
        return kind, good[:at] + bytes([good[at] ^ draw(st.integers(1, 255))]) + good[at + 1 :]
    if kind == "foreign":
        return kind, draw(st.binary(max_size=300))
    if kind == "not_weights_pickle":  # a pickle that would build an object, not tensors
        return kind, pickle.dumps(draw(st.sampled_from([argparse.Namespace(a=1), {1, 2}, print, ValueError("x")])))
    if kind == "not_a_dict":
        return kind, saved_bytes(draw(st.sampled_from([[1, 2], "weights", 3, None, (state,)])))
    if kind == "no_version":
        return kind, saved_bytes({"config": config_to_dict(TINY), "model": state})
    if kind == "version":
        version = draw(st.sampled_from([0, 2, "1", None, 1.5, [1], torch.tensor([1, 1]), torch.tensor(2)]))
        return kind, saved_bytes({**envelope(state), "format_version": version})
    if kind == "config":
        config = config_to_dict(TINY)
        mutation = draw(st.sampled_from(["drop", "unknown", "value", "not_a_dict"]))
        if mutation == "drop":
            del config[draw(st.sampled_from(sorted(config)))]
        elif mutation == "unknown":
            config["not_a_key"] = 1
        elif mutation == "value":
            config["grid"]["voxel_size"] = draw(st.sampled_from(["0.5", None, [1, 2], -1.0, torch.tensor(0.5)]))
        else:
            config = draw(st.sampled_from([[1], "tiny", 7, None]))
        return kind, saved_bytes({**envelope(state), "config": config})
    if kind == "model":
        model = draw(
            st.sampled_from([[1, 2], "weights", None, 3, {"w": [1.0, 2.0]}, {"w": "tensor"}, {1: torch.ones(1)}])
        )
        return kind, saved_bytes(envelope(model))
    return kind, saved_bytes({**envelope(state), "config": config_to_dict(DEMO)})  # another network's


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoints")


@given(case=st.one_of(weights().map(lambda w: ("good", w)), bad_checkpoints()))
def test_generated_checkpoints_load_their_weights_or_raise_naming_the_file(folder, case):
    kind, content = case
    path = folder / "model.pt"
    if kind == "good":
        save_checkpoint(path, content, TINY, step=3, metrics={"miou": 0.5})
    else:
        path.write_bytes(content)
    outcome = fuzz_tally.check(BOUNDARY, kind, lambda: load_checkpoint(path, expected=TINY), CheckpointError)
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
    if kind == "good":
        assert outcome.error is None, outcome.message
        assert outcome.value["config"] == TINY and outcome.value["step"] == 3
        assert sorted(outcome.value["model"]) == sorted(content)
        for name, tensor in content.items():
            assert torch.equal(outcome.value["model"][name], tensor)
    elif kind == "config" and outcome.error is None:  # a dropped key that has a default: still the tiny config
        assert dataclasses.replace(outcome.value["config"], name=TINY.name) == TINY  # `name` is not compared
    elif kind != "flipped" or outcome.error is not None:  # a flipped byte may land in padding or a tensor value
        assert outcome.error is not None, f"{kind}: loaded a malformed checkpoint"
        assert str(path) in outcome.message


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"format_version": torch.tensor([1, 1])}, "format"),  # RuntimeError: ambiguous truth value of a tensor
        ({"format_version": 1, "config": config_to_dict(TINY), "model": [1, 2]}, "'model' is not a mapping"),
        ({"format_version": 1, "config": config_to_dict(TINY), "model": {"w": "x"}}, "'model' entry 'w' is str"),
    ],
)
def test_envelopes_that_are_not_weights_are_checkpoint_errors(tmp_path, payload, match):
    """Regressions (found by the generator): these loaded, or raised RuntimeError, instead of CheckpointError."""
    path = tmp_path / "model.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)
