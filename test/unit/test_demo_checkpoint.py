"""checkpoints/demo.pt: small, loads as the demo preset, and predicts scenes it was not trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, load_checkpoint
from tacocc_core.config import load_preset
from tacocc_core.metrics import OccupancyEvaluator

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "demo.pt"


def test_the_demo_checkpoint_is_small_and_carries_no_training_state():
    assert CHECKPOINT.stat().st_size <= 10 * 1024 * 1024
    # The network must be the demo preset's; its training recipe (loss, renderer) may have changed since.
    payload = load_checkpoint(CHECKPOINT, expected=load_preset("demo"), ignore=INFERENCE_IRRELEVANT)
    assert "optimizer" not in payload and "rng" not in payload
    assert payload["step"] == 1000


@pytest.fixture(scope="module")
def unseen_scene(tmp_path_factory) -> Path:
    """Two keyframes of a scene with a seed the checkpoint was not trained on, at its training image size."""
    from tacocc_core.data.synthetic.writer import GenerateOptions, generate_dataset

    opts = GenerateOptions(scenes=1, keyframes=3, seed=11, image_size=(352, 198), sweeps_per_keyframe=1)
    return generate_dataset(tmp_path_factory.mktemp("unseen") / "nuscenes", opts)


def score(predictor, reader, tokens, grid) -> tuple[float, float]:
    evaluator = OccupancyEvaluator(grid)
    for token in tokens:
        evaluator.update(predictor.predict(reader.frame(token)).labels, reader.labels(token))
    scores = evaluator.results()["all"]
    return scores.geometry_iou, scores.miou


def test_the_demo_checkpoint_beats_its_untrained_network_on_an_unseen_scene(unseen_scene, tmp_path):
    from tacocc_core.checkpoint import save_checkpoint
    from tacocc_core.data.nuscenes_reader import NuScenesReader
    from tacocc_core.model.tacocc import TACOcc
    from tacocc_core.predictor import Predictor, PredictorOptions

    config = load_preset("demo")
    reader = NuScenesReader.open(unseen_scene, "v1.0-mini", config)
    tokens = [s["token"] for s in sorted(reader.nusc.sample, key=lambda s: s["timestamp"])]
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "untrained.pt", TACOcc(config).state_dict(), config)
    options = PredictorOptions(device="cpu", timings=False)
    trained = score(Predictor.from_checkpoint(CHECKPOINT, config, options), reader, tokens, config.grid.spec())
    untrained = score(Predictor.from_checkpoint(tmp_path / "untrained.pt", config, options), reader, tokens,
                      config.grid.spec())  # fmt: skip
    # Every generated street holds all ten object classes, and the checkpoint has learnt all ten on the
    # held-out scenes (checkpoints/README.md), so mIoU sits well above the surfaces-only level.
    # Measured: IoU 0.866, mIoU 0.498 (untrained 0.351, 0.003).
    assert trained[0] > 0.8 and trained[1] > 0.45, (trained, untrained)
    assert trained[0] > untrained[0] + 0.2 and trained[1] > untrained[1] + 0.2, (trained, untrained)
