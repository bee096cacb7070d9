import dataclasses

import pytest
import torch
from test_tacocc_model import sequence_batch

from tacocc_core.config import load_preset
from tacocc_core.labels import IGNORE
from tacocc_core.losses.occupancy import OccupancyLoss
from tacocc_core.train.objective import TrainingObjective, head_frame
from tacocc_core.train.train_config import LabelEfficientConfig, TrainConfig


def _config():
    config = load_preset("tiny")
    return dataclasses.replace(config, fuser=dataclasses.replace(config.fuser, mode="fixed", fixed_k=1))


def _batch(config, labelled):
    torch.manual_seed(1)
    batch = sequence_batch(config, 2)
    shape = config.grid.spec().shape
    labels = torch.randint(0, 17, (1, 2, *shape), dtype=torch.uint8)
    has = torch.tensor([labelled])
    labels[~has] = IGNORE
    batch["labels"], batch["has_labels"] = labels, has
    return batch


def test_occupancy_term_is_the_mean_over_labelled_frames_only():
    config = _config()
    tc = TrainConfig(steps=10, warmup_steps=0, renderer=False)
    torch.manual_seed(0)
    objective = TrainingObjective(config, tc).eval()
    batch = _batch(config, [True, False])
    with torch.no_grad():
        out = objective(batch, step=0)
        # Reference: the loss of frame 0 alone (frame 1 has no labels and must not count).
        seq = objective.net.forward_sequence(batch, step=0)
        expected = OccupancyLoss(config.loss, config.head.cascade_ratio)(
            head_frame(seq.heads[0], 0), batch["labels"][0, 0][None]
        )
    assert out.learnable and set(out.terms) == {"occ"}
    torch.testing.assert_close(out.total, expected.total, rtol=1e-5, atol=1e-5)


def test_unlabelled_window_is_not_learnable_in_supervised_mode_but_is_with_lidar_geometry():
    config = _config()
    batch = _batch(config, [False, False])
    torch.manual_seed(0)
    supervised = TrainingObjective(config, TrainConfig(steps=10, warmup_steps=0, renderer=False))
    out = supervised(batch, step=0)
    assert not out.learnable and out.terms == {} and float(out.total.detach()) == 0.0
    out.total.backward()  # connected to every parameter: gradients exist (zero) for a data-parallel step
    assert all(p.grad is not None and not p.grad.any() for p in supervised.parameters())

    le = LabelEfficientConfig(label_fraction=0.1, geometry_weight=1.0)
    torch.manual_seed(0)
    label_efficient = TrainingObjective(
        config, TrainConfig(steps=10, warmup_steps=0, renderer=False, label_efficient=le)
    )
    out = label_efficient(batch, step=0)
    assert out.learnable and set(out.terms) == {"geo"} and torch.isfinite(out.total)
    out.total.backward()
    head_grads = [p.grad for n, p in label_efficient.named_parameters() if n.startswith("net.head")]
    assert any(g is not None and g.abs().sum() > 0 for g in head_grads)


def test_teacher_labels_supervise_only_voxels_without_ground_truth():
    config = _config()
    le = LabelEfficientConfig(teacher_checkpoint="unused.pt", teacher_weight=1.0)
    tc = TrainConfig(steps=10, warmup_steps=0, renderer=False, label_efficient=le)
    torch.manual_seed(0)
    objective = TrainingObjective(config, tc).eval()
    batch = _batch(config, [True, True])  # every voxel labelled: the teacher has nothing to add
    teacher = torch.randint(0, 17, batch["labels"].shape, dtype=torch.uint8)
    with torch.no_grad():
        full = objective(batch, step=0, teacher_labels=teacher)
        assert float(full.terms["teacher"]) == 0.0
        batch["labels"][0, 1] = IGNORE
        batch["has_labels"][0, 1] = False
        partial = objective(batch, step=0, teacher_labels=teacher)
    assert float(partial.terms["teacher"]) > 0.0


@pytest.mark.slow  # renders six cameras with the CPU compositor: 10-20 s on 2 shared cores
def test_renderer_term_follows_eq5_weights():
    config = _config()
    tc = TrainConfig(steps=10, warmup_steps=0, renderer=True)
    torch.manual_seed(0)
    objective = TrainingObjective(config, tc)
    assert objective.renderer is not None
    batch = _batch(config, [True, False])
    out = objective(batch, step=0, with_views=True)
    lam = config.renderer.pc_lambda
    expected = (1 - lam) * out.terms["occ"] + lam * out.terms["pc"] + out.terms["rgb"]
    torch.testing.assert_close(out.total.detach(), expected, rtol=1e-5, atol=1e-6)
    assert out.views is not None and out.views.ndim == 3 and out.views.dtype.name == "uint8"
    off = TrainingObjective(config, dataclasses.replace(tc, renderer=False))
    assert off.renderer is None


@pytest.mark.slow
@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_photometric_weight_renders_unlabelled_frames(weight):
    config = _config()
    le = LabelEfficientConfig(photometric_weight=weight)
    tc = TrainConfig(steps=10, warmup_steps=0, renderer=True, label_efficient=le)
    torch.manual_seed(0)
    objective = TrainingObjective(config, tc)
    out = objective(_batch(config, [False, False]), step=0)
    assert out.learnable == (weight > 0)
    assert ("pc" in out.terms) == (weight > 0)
