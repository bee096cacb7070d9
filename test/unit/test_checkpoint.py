import dataclasses

import pytest
import torch

from tacocc_core.checkpoint import (
    INFERENCE_IRRELEVANT,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from tacocc_core.config import load_preset


@pytest.fixture
def tiny():
    return load_preset("tiny")


def test_round_trip(tmp_path, tiny):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "runs" / "ckpt.pt"
    save_checkpoint(path, model.state_dict(), tiny, step=7, metrics={"miou": 0.25})
    payload = load_checkpoint(path, expected=tiny)
    assert payload["config"] == tiny and payload["step"] == 7 and payload["metrics"]["miou"] == 0.25
    restored = torch.nn.Linear(3, 2)
    restored.load_state_dict(payload["model"])
    torch.testing.assert_close(restored.weight, model.weight)
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp file left


def test_mismatched_config_names_the_keys(tmp_path, tiny):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {}, tiny)
    other = dataclasses.replace(
        tiny,
        name="renamed",
        fuser=dataclasses.replace(tiny.fuser, fixed_k=2),
        grid=dataclasses.replace(tiny.grid, z_range=(-4.0, 4.0)),
    )
    with pytest.raises(CheckpointError, match=r"differing keys: fuser.fixed_k, grid.z_range") as err:
        load_checkpoint(path, expected=other)
    assert str(path) in str(err.value) and "name" not in str(err.value).split("differing keys:")[1]
    training_only = dataclasses.replace(tiny, renderer=dataclasses.replace(tiny.renderer, enabled=False))
    with pytest.raises(CheckpointError, match="renderer.enabled"):
        load_checkpoint(path, expected=training_only)
    assert load_checkpoint(path, expected=training_only, ignore=INFERENCE_IRRELEVANT)["config"] == tiny


def test_bad_files(tmp_path, tiny):
    with pytest.raises(CheckpointError, match="absent.pt: checkpoint not found"):
        read_checkpoint(tmp_path / "absent.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, torch.nn.Linear(64, 64).state_dict(), tiny)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt: not a readable checkpoint"):
        read_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: not a tacocc checkpoint"):
        read_checkpoint(foreign)
    future = tmp_path / "future.pt"
    torch.save({"format_version": 99, "config": {}, "model": {}}, future)
    with pytest.raises(CheckpointError, match="format 99 is not supported"):
        read_checkpoint(future)
    bad_config = tmp_path / "badconfig.pt"
    torch.save({"format_version": 1, "config": {"grid": {"voxel_size": -1.0}}, "model": {}}, bad_config)
    with pytest.raises(CheckpointError, match=r"(?s)embedded config.*grid.voxel_size"):
        read_checkpoint(bad_config)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "config": {}, "model": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)


def trained_checkpoint(path, config):
    """A checkpoint as training writes it: weights after one AdamW step plus optimiser state and provenance."""
    from tacocc_core.model.tacocc import TACOcc

    torch.manual_seed(0)
    model = TACOcc(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    save_checkpoint(path, model.state_dict(), config, step=12, metric=0.3, optimizer=optimizer.state_dict())
    return model


@pytest.mark.parametrize("half", [False, True])
def test_export_keeps_weights_config_and_provenance_only(tmp_path, half):
    from tacocc_core.checkpoint import export_weights

    demo = load_preset("demo")
    model = trained_checkpoint(tmp_path / "latest.pt", demo)
    kept = export_weights(tmp_path / "latest.pt", tmp_path / "out" / "demo.pt", half=half)
    assert kept == {"step": 12, "metric": 0.3}
    payload = load_checkpoint(tmp_path / "out" / "demo.pt", expected=demo)
    assert "optimizer" not in payload and payload["exported_from"] == "latest.pt"
    exported_size = (tmp_path / "out" / "demo.pt").stat().st_size
    assert exported_size < (tmp_path / "latest.pt").stat().st_size / (5 if half else 2.5)
    restored = type(model)(demo)
    restored.load_state_dict(payload["model"])
    for name, tensor in model.state_dict().items():
        got = restored.state_dict()[name]
        assert got.dtype == tensor.dtype, name
        if half and tensor.is_floating_point():
            torch.testing.assert_close(got, tensor, atol=2e-3, rtol=2e-3)
        else:
            assert torch.equal(got, tensor), name


def test_export_refuses_bad_sources_and_overwriting_its_source(tmp_path, tiny):
    from tacocc_core.checkpoint import export_weights
    from tacocc_core.cli import main

    with pytest.raises(CheckpointError, match="absent.pt: checkpoint not found"):
        export_weights(tmp_path / "absent.pt", tmp_path / "out.pt")
    save_checkpoint(tmp_path / "a.pt", torch.nn.Linear(2, 2).state_dict(), tiny)
    with pytest.raises(CheckpointError, match="is the source checkpoint itself"):
        export_weights(tmp_path / "a.pt", tmp_path / "a.pt")
    assert main(["export", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "b.pt")]) == 2
    assert not (tmp_path / "b.pt").exists()
    assert main(["export", str(tmp_path / "a.pt"), "--out", str(tmp_path / "b.pt")]) == 0
    assert torch.equal(
        read_checkpoint(tmp_path / "b.pt")["model"]["weight"], read_checkpoint(tmp_path / "a.pt")["model"]["weight"]
    )


def test_a_checkpoint_from_before_the_eq1_keys_keeps_the_fuser_it_was_trained_with(tmp_path, tiny):
    """Written without fuser.context_terms / exclude_own_voxel / noise_fade: it was trained with context terms,
    the own voxel excluded and the noise faded, and reads back so; a current checkpoint keeps its values."""
    from tacocc_core.config import config_to_dict

    path = tmp_path / "old.pt"
    save_checkpoint(path, {}, tiny)
    payload = torch.load(path, weights_only=True)
    for key in ("context_terms", "exclude_own_voxel", "noise_fade"):
        del payload["config"]["fuser"][key]
    torch.save(payload, path)
    fuser = read_checkpoint(path)["config"].fuser
    assert fuser.context_terms and fuser.exclude_own_voxel and fuser.noise_fade
    save_checkpoint(path, {}, tiny)
    current = read_checkpoint(path)["config"]
    assert config_to_dict(current) == config_to_dict(tiny) and not current.fuser.context_terms
