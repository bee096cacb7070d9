"""tacocc_ros.tooling.replay: a converted bag played by `tacocc play` through the occupancy node process, over real DDS.

Issue 9, end to end: every frame the node should build arrives, each grid equals the direct path
(`Predictor` run here on `bag_frames` of the same bag, temporal state carried frame to frame), the bag's
labels are recorded as `bag_frames` reads them, and a checkpoint written by fine-tuning on the same bag
reaches the running node without a restart (service and parameter). One node process serves the phases
of this file (starting it costs most of the time); they run in file order and are `slow` (the reduced demo
checks the first pass's points in the default suite). The bad-input tests start no node or a failing one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy")
from rosbags.rosbag2 import Reader, Writer  # noqa: E402

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes  # noqa: E402
from tacocc_core.bags.messages import TYPESTORE  # noqa: E402
from tacocc_core.bags.reading import BagError  # noqa: E402
from tacocc_core.checkpoint import save_checkpoint  # noqa: E402
from tacocc_core.config import load_preset  # noqa: E402
from tacocc_core.data.synthetic.rig import surround_rig  # noqa: E402
from tacocc_core.model.tacocc import TACOcc  # noqa: E402
from tacocc_core.predictor import Predictor, PredictorOptions  # noqa: E402
from tacocc_core.recording import load_recording, save_recording  # noqa: E402
from tacocc_core.train.train_config import load_train_config  # noqa: E402
from tacocc_ros.bags.bag_frames import bag_frames  # noqa: E402
from tacocc_ros.tooling.replay import (  # noqa: E402
    NodeProcessError,
    ReplayError,
    ReplayOptions,
    ReplaySession,
    node_sync_config,
    record_replay,
    replay_node_params,
)
from tacocc_ros.training.bag_training import FineTuner, FineTuneSpec  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
TRAIN_YAML = REPO / "config" / "train_tiny.yaml"
# One frame per keyframe: the node knows the rig's camera offsets and matches images within 20 ms (under half
# the LiDAR period), so the sweep 50 ms before a keyframe finds none. Keyframes are 0.5 s of bag apart: at
# 0.5x the keep-latest node has 1 s per frame.
NODE_PARAMS = {
    "model_config": "tiny",
    "device": "cpu",
    "slop_s": 0.02,
    # a sweep waits 1 s of bag time for its images: in a fresh process on a busy CPU an image callback can run
    # behind the next sweeps, and this test is about the grids, not about the node keeping up
    "timeout_s": 1.0,
    **{f"cameras.{name}.offset_s": us * 1e-6 for name, us in surround_rig().camera_offset_us.items()},
}
RATE = 0.5


# --- the bag, the checkpoints, the direct path ----------------------------------------------------------
@pytest.fixture(scope="module")
def config():
    return load_preset("tiny")


@pytest.fixture(scope="module")
def bag(synthetic_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("replay_bags")
    return convert_nuscenes(synthetic_dataset, "v1.0-mini", out, options=ConvertOptions(progress=False))[0]


@pytest.fixture(scope="module")
def frames(bag, config):
    return list(bag_frames(bag, config, node_sync_config(NODE_PARAMS, config)))


def direct_path(checkpoint: Path, config, frames) -> dict[int, np.ndarray]:
    """Predictor on the bag's frames in order, labels as the node publishes them (0 outside 1..16)."""
    predictor = Predictor.from_checkpoint(checkpoint, config, PredictorOptions(device="cpu", timings=False))
    out = {}
    for item in frames:
        prediction = predictor.predict(item.frame)
        assert prediction.error is None, prediction.error
        labels = prediction.labels
        out[item.frame.stamp_ns] = np.where((labels > 0) & (labels < 17), labels, 0).astype(np.uint8)
    return out


def fine_tune(bag: Path, config, out_dir: Path, initial: Path, steps: int) -> Path:
    """`steps` supervised steps on the bag with the training node's engine; its `latest.pt`."""
    import dataclasses

    tc = load_train_config(TRAIN_YAML)
    tc = dataclasses.replace(tc, steps=steps, warmup_steps=0, ckpt_every=steps)
    spec = FineTuneSpec(
        bags=(str(bag),), config=config, train_config=tc, out_dir=str(out_dir), initial_checkpoint=str(initial),
        mode="supervised",
    )  # fmt: skip
    tuner = FineTuner(spec)
    tuner.run()
    return tuner.ckpt.latest_path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("replay")


@pytest.fixture(scope="module")
def initial_checkpoint(workdir, config) -> Path:
    torch.manual_seed(0)
    path = workdir / "initial.pt"
    save_checkpoint(path, TACOcc(config).state_dict(), config)
    return path


@pytest.fixture(scope="module")
def session(bag, workdir, initial_checkpoint):
    """The node on checkpoint path P (a copy of the initial weights), the recorder, one warm-up pass."""
    current = workdir / "current.pt"
    shutil.copy(initial_checkpoint, current)
    params = replay_node_params(bag, {**NODE_PARAMS, "checkpoint": str(current)})
    with ReplaySession(params, workdir / "node.log", ReplayOptions()) as s:
        s.checkpoint_path = current
        s.warm_up(bag)
        yield s
    assert s.node.returncode == 0, s.node.log_tail()


def replay_without_drops(session, bag, attempts: int = 3):
    """A pass in which the node kept up with every frame: on a CPU shared with other jobs a keep-latest node
    may drop one (counted `dropped replaced`); the bag is then played again at half the rate, at most
    `attempts` times (the grids do not depend on the rate, only whether the node keeps up does)."""
    rate = RATE
    for _ in range(attempts):
        recording = session.replay(bag, rate)
        if not recording.dropped_stamps:
            return recording
        rate /= 2
    raise AssertionError(f"frames dropped in {attempts} passes: {recording.dropped_stamps}; {recording.diagnostics}")


@pytest.fixture(scope="module")
def first(session, bag):
    return replay_without_drops(session, bag)


# --- the phases ----------------------------------------------------------------------------------------
# The phases of the first pass are `slow`: the default suite checks the same on the reduced demo's replay
# (test_demo.py, check_direct_path: the expected frames are bag_frames' frames, every received grid equals
# the direct Predictor path, the recorded labels are bag_frames' labels; latency, published and k counts in
# check_outputs) and the recording's round trip in test/unit/test_recording.py. Here they run on a random
# tiny network with no frame dropped (a pass is replayed slower until none is).
@pytest.mark.slow
def test_every_frame_arrives_and_equals_the_direct_predictor(first, frames, config, initial_checkpoint):
    stamps = tuple(item.frame.stamp_ns for item in frames)
    assert len(stamps) == 4 and first.expected_stamps == stamps  # one frame per keyframe of the 4-keyframe scene
    assert first.received_stamps == stamps
    want = direct_path(initial_checkpoint, config, frames)
    for stamp in stamps:
        got = first.preds[stamp]
        assert got.shape == config.grid.spec().shape and (got > 0).any()
        np.testing.assert_array_equal(got, want[stamp], err_msg=f"grid of stamp {stamp}")
    assert set(first.latency_ms) == set(stamps) and all(v > 0 for v in first.latency_ms.values())
    assert int(first.diagnostics["published"]) >= len(stamps)
    assert sum(int(v) for k, v in first.diagnostics.items() if k.startswith("k=")) > 0


@pytest.mark.slow
def test_recorded_labels_are_the_bag_frames_labels(first, frames):
    labelled = {item.frame.stamp_ns: item.labels for item in frames if item.labels is not None}
    assert labelled and set(first.gts) == set(labelled)
    for stamp, labels in labelled.items():
        np.testing.assert_array_equal(first.gts[stamp], labels, err_msg=f"labels of stamp {stamp}")


@pytest.mark.slow
def test_the_recording_round_trips_through_its_directory(first, workdir):
    directory = save_recording(workdir / "rec", first)
    back = load_recording(directory)
    assert back.expected_stamps == first.expected_stamps and back.received_stamps == first.received_stamps
    assert back.checkpoint == first.checkpoint and back.rate == first.rate and back.bag == first.bag
    assert back.latency_ms == pytest.approx(first.latency_ms)
    for stamp, grid in first.preds.items():
        np.testing.assert_array_equal(back.preds[stamp], grid)


@pytest.mark.slow
def test_a_fine_tuned_checkpoint_reaches_the_running_node_by_its_reload_service(
    session, first, bag, frames, config, workdir, initial_checkpoint
):
    latest = fine_tune(bag, config, workdir / "tune", initial_checkpoint, steps=2)
    os.replace(latest, session.checkpoint_path)  # the file the node runs on is now the new checkpoint
    assert "reloaded" in session.node.reload_checkpoint()
    again = replay_without_drops(session, bag)
    want = direct_path(session.checkpoint_path, config, frames)
    changed = 0
    for stamp in again.expected_stamps:
        np.testing.assert_array_equal(again.preds[stamp], want[stamp], err_msg=f"grid of stamp {stamp}")
        changed += int(not np.array_equal(again.preds[stamp], first.preds[stamp]))
    assert changed > 0, "the reloaded checkpoint gave the old grids"
    assert int(again.diagnostics["checkpoint reloads"]) >= 1


def training_node(bag: Path, out_dir: Path, initial: Path, steps: int) -> list[str]:
    params = {
        "bags": f"['{bag}']", "model_config": "tiny", "train_config": str(TRAIN_YAML), "out_dir": str(out_dir),
        "steps": str(steps), "checkpoint_interval": str(steps), "mode": "supervised", "checkpoint": str(initial),
    }  # fmt: skip
    args = [sys.executable, "-m", "tacocc_ros.training.training_node", "--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


@pytest.mark.slow
def test_the_training_node_checkpoint_reaches_the_running_node_by_its_parameter(
    session, first, bag, frames, config, workdir, initial_checkpoint
):
    run = workdir / "online"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    result = subprocess.run(
        training_node(bag, run, initial_checkpoint, 3), env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    session.node.reload_checkpoint(run / "latest.pt")
    assert session.node.params["checkpoint"] == str(run / "latest.pt")
    again = replay_without_drops(session, bag)
    assert again.checkpoint == str(run / "latest.pt")
    want = direct_path(run / "latest.pt", config, frames)
    for stamp in again.expected_stamps:
        np.testing.assert_array_equal(again.preds[stamp], want[stamp], err_msg=f"grid of stamp {stamp}")
    assert any(not np.array_equal(again.preds[s], first.preds[s]) for s in again.expected_stamps)


# --- bad input -------------------------------------------------------------------------------------------
def copy_without(bag: Path, out: Path, topic: str) -> Path:
    """The bag with `topic` left out (calibration.yaml copied)."""
    with Reader(bag) as src, Writer(out, version=8) as dst:
        conns = {
            c.id: dst.add_connection(c.topic, c.msgtype, typestore=TYPESTORE)
            for c in src.connections
            if c.topic != topic
        }
        for c, stamp, data in src.messages():
            if c.id in conns:
                dst.write(conns[c.id], stamp, data)
    shutil.copy(bag / "calibration.yaml", out / "calibration.yaml")
    return out


def test_a_missing_bag_fails_before_any_process_starts(tmp_path, initial_checkpoint):
    absent = tmp_path / "no_such_bag"
    with pytest.raises(BagError, match="no_such_bag: no such bag"):
        record_replay(absent, tmp_path / "rec", {"model_config": "tiny"}, log_path=tmp_path / "node.log")
    assert not (tmp_path / "node.log").exists() and not (tmp_path / "rec").exists()


def test_a_bag_without_lidar_fails_before_any_process_starts(bag, tmp_path):
    broken = copy_without(bag, tmp_path / "no_lidar", "/LIDAR_TOP")
    with pytest.raises(BagError, match=r"no topic /LIDAR_TOP .* in .*no_lidar; set lidar_topic"):
        record_replay(broken, tmp_path / "rec", {"model_config": "tiny"}, log_path=tmp_path / "node.log")
    assert not (tmp_path / "node.log").exists() and not (tmp_path / "rec").exists()


def test_a_pass_outside_the_session_s_with_is_refused_and_starts_nothing(bag, tmp_path):
    session = ReplaySession(replay_node_params(bag, {"model_config": "tiny"}), tmp_path / "node.log")
    with pytest.raises(ReplayError, match="outside `with ReplaySession"):
        session.replay(bag, RATE)
    with pytest.raises(ReplayError, match="the recorder is not running"):
        session.warm_up(bag)
    assert session.node.pid is None  # no node process was started


def test_a_node_that_exits_early_raises_with_its_log(bag, tmp_path):
    params = {"model_config": "tiny", "checkpoint": str(tmp_path / "absent.pt"), "device": "cpu"}
    with pytest.raises(NodeProcessError, match=r"exited with status 1(.|\n)*absent\.pt"):
        record_replay(bag, tmp_path / "rec", params, log_path=tmp_path / "node.log")
    assert not (tmp_path / "rec").exists()
