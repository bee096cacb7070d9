import dataclasses
import json

import pytest
import torch

from tacocc_core.cli import main
from tacocc_core.commands.recipe import count_flops, dry_run
from tacocc_core.config import load_preset
from tacocc_core.model.tacocc import TACOcc


@pytest.fixture
def tiny_recipe(tmp_path):
    path = tmp_path / "recipe_tiny.yaml"
    path.write_text("model: tiny\nepochs: 3\ntrain_frames: 1000\ntrain: {batch_size: 2, lr: 0.0001, warmup_steps: 5}\n")
    return path


def test_dry_run_prints_steps_parameters_and_flops_without_a_dataset(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "dry.json"
    assert main(["recipe", str(tiny_recipe), "--processes", "4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    numbers = json.loads(out.read_text())
    # 1000 keyframes / (4 processes x batch 2) = 125 steps per epoch, 3 epochs.
    assert numbers["steps_per_epoch"] == 125 and numbers["steps"] == 375 and "steps per epoch: 125" in text
    torch.manual_seed(0)
    assert numbers["parameters"] == sum(p.numel() for p in TACOcc(load_preset("tiny")).parameters())
    assert numbers["flops_per_frame"] > 1e8 and "GFLOP" in text


def test_flops_grow_with_the_image_size():
    cfg = load_preset("tiny")
    torch.manual_seed(0)
    small = count_flops(cfg, TACOcc(cfg).eval())
    h, w = cfg.cameras.image_size
    big_cfg = dataclasses.replace(cfg, cameras=dataclasses.replace(cfg.cameras, image_size=(2 * h, 2 * w)))
    torch.manual_seed(0)
    big = count_flops(big_cfg, TACOcc(big_cfg).eval())
    assert big > 1.5 * small


def test_bad_process_count(tiny_recipe, capsys):
    assert main(["recipe", str(tiny_recipe), "--processes", "0"]) == 2
    assert "--processes must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "depth", "size"),
    [("recipe_nuscenes_r50_256x704", 50, [256, 704]), ("recipe_nuscenes_r101_896x1600", 101, [896, 1600])],
)
def test_the_nuscenes_recipes_build_without_a_dataset(name, depth, size):
    numbers = dry_run(name, processes=8, flops=False)
    assert numbers["backbone_depth"] == depth and numbers["image_size"] == size
    assert numbers["steps_per_epoch"] == 3517 and numbers["steps"] == 52755
    assert numbers["parameters"] > 20e6


def test_train_takes_model_and_steps_from_a_recipe(tiny_recipe, tmp_path, monkeypatch):
    from tacocc_core.cli import build_parser
    from tacocc_core.commands.train import build_spec

    argv = ["train", "--recipe", str(tiny_recipe), "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    monkeypatch.setenv("WORLD_SIZE", "4")
    spec = build_spec(build_parser().parse_args(argv))
    assert spec.config.name == "tiny" and spec.train_config.steps == 375 and spec.train_config.lr == 1e-4
    monkeypatch.setenv("WORLD_SIZE", "1")
    spec = build_spec(build_parser().parse_args([*argv, "--set", "train.lr=0.001"]))
    assert spec.train_config.steps == 1500 and spec.train_config.lr == 1e-3  # 1000 / 2 x 3 epochs
    with pytest.raises(ValueError, match="give --config"):
        build_spec(build_parser().parse_args(argv[:1] + argv[3:]))
