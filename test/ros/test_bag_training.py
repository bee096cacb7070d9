"""tacocc_ros.training.bag_training: the fine-tuning steps in-process (the node test runs them as a process)."""

from __future__ import annotations

import dataclasses

import pytest

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
from tacocc_core.bags.reading import BagError
from tacocc_core.checkpoint import CheckpointError
from tacocc_core.config import load_preset
from tacocc_core.train.train_config import load_train_config
from tacocc_ros.training.bag_training import FineTuner, FineTuneSpec, load_sequences


@pytest.fixture(scope="module")
def bag(synthetic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune_bags")
    return convert_nuscenes(synthetic_dataset, "v1.0-mini", out, options=ConvertOptions(progress=False))[0]


@pytest.fixture(scope="module")
def unlabelled_bag(synthetic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune_bags_nolabels")
    options = ConvertOptions(progress=False, labels="none")
    return convert_nuscenes(synthetic_dataset, "v1.0-mini", out, options=options)[0]


def spec(bag, out_dir, steps=4, **changes) -> FineTuneSpec:
    tc = load_train_config("config/train_tiny.yaml")
    tc = dataclasses.replace(tc, steps=steps, warmup_steps=0, renderer=False, ckpt_every=2, num_workers=0)
    if "geometry_weight" in changes:
        le = dataclasses.replace(tc.label_efficient, geometry_weight=changes.pop("geometry_weight"))
        tc = dataclasses.replace(tc, label_efficient=le)
    return FineTuneSpec((str(bag),), load_preset("tiny"), tc, str(out_dir), **changes)


def test_supervised_loss_goes_down_and_resume_continues(bag, tmp_path):
    seen = []
    tuner = FineTuner(spec(bag, tmp_path, steps=4, mode="supervised"))
    assert tuner.run(seen.append) == 4
    losses = [p.terms["loss"] for p in seen]
    assert losses[-1] < losses[0], losses
    assert [p.checkpoint is not None for p in seen] == [False, True, False, True]
    # Without resume, the existing run is refused and left as it was.
    latest = (tmp_path / "latest.pt").read_bytes()
    with pytest.raises(CheckpointError, match="latest.pt exists: set resume to continue that run"):
        FineTuner(spec(bag, tmp_path, steps=5, mode="supervised"))
    assert (tmp_path / "latest.pt").read_bytes() == latest
    more = FineTuner(spec(bag, tmp_path, steps=5, mode="supervised", resume=True))
    assert more.step == 4
    resumed = []
    more.run(resumed.append)
    assert [p.step for p in resumed] == [5]


def test_batches_are_a_function_of_the_step(bag, tmp_path):
    a = FineTuner(spec(bag, tmp_path / "a"))
    b = FineTuner(spec(bag, tmp_path / "b"))
    for step in range(3):
        assert (a.batch(step)["images"] == b.batch(step)["images"]).all()


def test_self_supervised_trains_on_an_unlabelled_bag(unlabelled_bag, tmp_path):
    seqs = load_sequences(spec(unlabelled_bag, tmp_path, mode="auto"))
    assert seqs and all(f.labels is None for s in seqs for f in s)
    tuner = FineTuner(spec(unlabelled_bag, tmp_path, steps=2, mode="self_supervised", geometry_weight=1.0))
    seen = []
    tuner.run(seen.append)
    assert [p.step for p in seen] == [1, 2] and seen[0].terms["geo"] > 0 and "occ" not in seen[0].terms


def test_bad_modes_are_refused(bag, unlabelled_bag, tmp_path):
    with pytest.raises(BagError, match=r"nolabels.*no /occupancy/gt messages.*supervised"):
        load_sequences(spec(unlabelled_bag, tmp_path, mode="supervised"))
    with pytest.raises(ValueError, match="geometry_weight, photometric_weight or teacher_weight"):
        load_sequences(spec(bag, tmp_path, mode="self_supervised"))
    with pytest.raises(ValueError, match="mode must be"):
        load_sequences(spec(bag, tmp_path, mode="teacher"))


def test_fine_tuning_starts_from_a_checkpoint_trained_with_another_loss_and_renderer(bag, tmp_path):
    """The network must match the initial checkpoint; its training recipe (class weights, renderer) may not."""
    import torch

    from tacocc_core.checkpoint import CheckpointError, save_checkpoint
    from tacocc_core.config import config_from_dict, config_to_dict
    from tacocc_core.model.tacocc import TACOcc

    data = config_to_dict(load_preset("tiny"))
    data["loss"]["class_weights"] = []
    data["renderer"]["inner_steps"] = 2
    older = config_from_dict(data)
    torch.manual_seed(0)
    net = TACOcc(older)
    initial = tmp_path / "initial.pt"
    save_checkpoint(initial, net.state_dict(), older)
    tuner = FineTuner(spec(bag, tmp_path / "run", initial_checkpoint=str(initial)))
    first = next(iter(net.state_dict().items()))
    assert torch.equal(tuner.objective.net.state_dict()[first[0]], first[1])
    data["head"]["channels"] = 8  # another network: refused
    torch.manual_seed(0)
    save_checkpoint(initial, TACOcc(config_from_dict(data)).state_dict(), config_from_dict(data))
    with pytest.raises(CheckpointError, match="head.channels"):
        FineTuner(spec(bag, tmp_path / "run2", initial_checkpoint=str(initial)))


def test_a_fine_tune_continues_the_fuser_schedule_of_its_initial_checkpoint(bag, tmp_path):
    """A checkpoint written at step 800 fine-tunes at model steps 800, 801, ...: the adaptive fuser keeps the
    final tau it was trained into (and the Gumbel noise of training, faded out only under noise_fade), across
    a resume too; random weights start at 0."""
    import torch

    from tacocc_core.checkpoint import save_checkpoint
    from tacocc_core.model.selector import noise_scale_at, tau_at
    from tacocc_core.model.tacocc import TACOcc

    config = load_preset("tiny")
    torch.manual_seed(0)
    initial = tmp_path / "initial.pt"
    save_checkpoint(initial, TACOcc(config).state_dict(), config, step=800)

    def encoder_steps(tuner: FineTuner) -> list[int]:
        seen: list[int] = []
        tuner.objective.net.encoder.register_forward_pre_hook(
            lambda _module, _args, kwargs: seen.append(kwargs["step"]), with_kwargs=True
        )
        return seen

    tuner = FineTuner(spec(bag, tmp_path / "run", steps=2, initial_checkpoint=str(initial)))
    seen = encoder_steps(tuner)
    tuner.run()
    window = config.temporal.window
    assert seen == [800] * window + [801] * window
    fc = config.fuser
    assert fc.tau_anneal_steps <= 800
    assert noise_scale_at(seen[0], fc.tau_anneal_steps, fc.noise_fade) == (0.0 if fc.noise_fade else 1.0)
    assert tau_at(seen[0], fc.gumbel_tau, fc.tau_anneal_steps) == fc.gumbel_tau[1]

    resumed = FineTuner(spec(bag, tmp_path / "run", steps=3, resume=True))
    seen = encoder_steps(resumed)
    resumed.run()
    assert seen == [802] * window

    fresh = FineTuner(spec(bag, tmp_path / "fresh", steps=1))
    seen = encoder_steps(fresh)
    fresh.run()
    assert seen == [0] * window


def test_self_supervised_learns_from_a_teacher_checkpoint(unlabelled_bag, tmp_path):
    """teacher_checkpoint + teacher_weight act in the node's path too: the teacher's confident labels are a term."""
    import torch

    from tacocc_core.checkpoint import save_checkpoint
    from tacocc_core.model.tacocc import TACOcc

    config = load_preset("tiny")
    torch.manual_seed(0)
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, TACOcc(config).state_dict(), config, step=10)
    s = spec(unlabelled_bag, tmp_path / "run", steps=1, mode="self_supervised")
    le = dataclasses.replace(
        s.train_config.label_efficient, teacher_checkpoint=str(teacher), teacher_weight=1.0, teacher_threshold=0.05
    )
    tuner = FineTuner(dataclasses.replace(s, train_config=dataclasses.replace(s.train_config, label_efficient=le)))
    seen = []
    tuner.run(seen.append)
    assert seen[0].terms["teacher"] > 0 and "geo" not in seen[0].terms and "occ" not in seen[0].terms


def test_the_rig_tacocc_calibration_derives_from_a_bag_is_accepted_for_training(bag, tmp_path):
    """A .db3 robot bag: `tacocc calibration --bag --params-file` writes its rig; training on the bag with that
    file (the `calibration` parameter) gives the frames of the rig derived from the bag itself."""
    import numpy as np
    import yaml
    from robot_bag import robot_params, write_robot_bag

    from tacocc_core.bags.topics import SensorTopics, read_params_file
    from tacocc_core.cli import main as tacocc

    robot = write_robot_bag(bag, tmp_path / "robot", "db3")
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"/**": {"ros__parameters": robot_params(tuple(load_preset("tiny").cameras.names))}})
    )
    calibration = tmp_path / "calibration.yaml"
    assert tacocc(["calibration", "--bag", str(robot), "--params-file", str(params), "--out", str(calibration)]) == 0
    topics = SensorTopics.from_params(read_params_file(params))
    from_file: list[str] = []
    with_file = load_sequences(
        spec(robot, tmp_path, mode="self_supervised", geometry_weight=1.0, topics=topics, calibration=str(calibration)),
        from_file.append,
    )
    assert from_file == [f"rig of {robot} from {calibration}"]
    derived = load_sequences(spec(robot, tmp_path, mode="self_supervised", geometry_weight=1.0, topics=topics))
    assert len(with_file) == len(derived) > 0
    for a, b in zip(with_file, derived, strict=True):
        for fa, fb in zip(a, b, strict=True):
            np.testing.assert_allclose(fa.cam2lidar, fb.cam2lidar, atol=1e-9)
            np.testing.assert_allclose(fa.lidar2global, fb.lidar2global, atol=1e-9)
            assert fa.labels is None
