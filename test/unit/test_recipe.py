import pytest

from tacocc_core.config import ConfigError, preset_path
from tacocc_core.train.recipe import NUSCENES_TRAIN_KEYFRAMES, Recipe, load_recipe, world_size

RECIPES = ("recipe_nuscenes_r50_256x704", "recipe_nuscenes_r101_896x1600")


@pytest.mark.parametrize("name", RECIPES)
def test_the_nuscenes_recipes_are_the_papers_optimiser_and_schedule(name):
    recipe = load_recipe(preset_path(name))
    assert recipe.epochs == 15 and recipe.train_frames == NUSCENES_TRAIN_KEYFRAMES == 28130
    tc = recipe.train_config(8)
    assert (tc.lr, tc.weight_decay, tc.batch_size) == (1e-4, 0.01, 1)
    # 28130 keyframes / (8 processes x 1) = 3516.25 -> 3517 steps per epoch, 15 epochs.
    assert recipe.steps_per_epoch(8) == 3517 and tc.steps == 15 * 3517
    assert recipe.train_config(1).steps == 15 * 28130
    assert recipe.model == name.removeprefix("recipe_")


def test_steps_follow_the_processes_and_the_batch():
    recipe = Recipe(model="tiny", epochs=2, train_frames=100, train={"batch_size": 3, "warmup_steps": 1})
    assert recipe.steps_per_epoch(1) == 34 and recipe.steps_per_epoch(4) == 9 and recipe.steps_per_epoch(200) == 1
    assert recipe.train_config(4).steps == 18
    with pytest.raises(ValueError, match="processes must be >= 1"):
        recipe.steps_per_epoch(0)


def test_bad_recipes_name_the_problem(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("model: tiny\nepochs: 2\ntrain_frames: 10\ntrain: {steps: 5}\n")
    with pytest.raises(ConfigError, match="steps is derived"):
        load_recipe(bad)
    bad.write_text("model: tiny\nepochs: 2\ntrain_frames: 10\ntrain: {lr: -1.0}\n")
    with pytest.raises(ConfigError, match="lr"):
        load_recipe(bad)
    bad.write_text("model: tiny\nepochs: 0\ntrain_frames: 10\ntrain: {}\n")
    with pytest.raises(ConfigError, match="epochs"):
        load_recipe(bad)


def test_world_size_reads_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert world_size() == 8
