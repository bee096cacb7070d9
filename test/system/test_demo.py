"""`tacocc demo` end to end: synthetic scenes -> rosbag2 -> occupancy node and bag player as separate
processes over DDS -> pictures and report, checked against a recomputation from the recorded grids.

The network is the shipped demo checkpoint (checkpoints/demo.pt). The default run is reduced (1 scene,
4 keyframes, small images); the full-size run, with a second run that must reuse the cached dataset and
bag, is marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tacocc_core import cli as core_cli
from tacocc_core.checkpoint import save_checkpoint
from tacocc_core.config import load_preset
from tacocc_core.data.synthetic.rig import load_rig
from tacocc_core.demo.numbers import k_histogram
from tacocc_core.demo.report import OUTPUTS
from tacocc_core.metrics import OccupancyEvaluator
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.predictor import Predictor, PredictorOptions
from tacocc_core.recording import load_recording
from tacocc_core.viz.foxglove_messages import (
    GROUND_TRUTH_TOPIC,
    LIDAR_TOPIC,
    OCCUPANCY_TOPIC,
    TF_TOPIC,
    camera_topic,
    labels_from_cells,
)
from tacocc_ros import cli as ros_cli
from tacocc_ros.bags.bag_frames import bag_frames
from tacocc_ros.commands.demo import FOXGLOVE_FILE, SLOP_S, TIMEOUT_S, WORK_DIR
from tacocc_ros.tooling.replay import node_sync_config

REPO = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = REPO / "checkpoints" / "demo.pt"


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory) -> Path:
    config = load_preset("demo")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "demo_random.pt"
    save_checkpoint(path, TACOcc(config).state_dict(), config)
    return path


def run_demo(out: Path, checkpoint: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tacocc_ros.cli", "demo", "--out", str(out), "--checkpoint", str(checkpoint)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def demo_here(capsys, out: Path, checkpoint: Path, *extra: str) -> tuple[int, str]:
    """`tacocc demo` run in this process: (exit code, stderr)."""
    capsys.readouterr()
    code = core_cli.main(["demo", "--out", str(out), "--checkpoint", str(checkpoint), *extra], ros_cli.COMMANDS)
    return code, capsys.readouterr().err


def check_outputs(out: Path, read_foxglove_mcap) -> dict:
    """Everything the demo promises is there, whole, and its numbers follow from the recorded grids."""
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "recording", "node.log", FOXGLOVE_FILE, WORK_DIR])
    recording = load_recording(out / "recording")
    report = json.loads((out / "report.json").read_text())
    numbers = report["numbers"]
    # frames: one picture per received grid, named by index and stamp
    frames = sorted((out / "frames").iterdir())
    assert [f.name for f in frames] == [f"{i:04d}_{s}.png" for i, s in enumerate(recording.received_stamps)]
    assert report["frames"] == [f"frames/{f.name}" for f in frames]
    for path in frames:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) >= 300
    with Image.open(out / "demo.gif") as gif:
        assert gif.n_frames == len(frames)
    # counts
    assert numbers["frames_expected"] == len(recording.expected_stamps) > 0
    assert numbers["frames_received"] == len(recording.received_stamps) > 0
    assert numbers["frames_dropped"] == len(recording.expected_stamps) - len(recording.received_stamps)
    assert set(recording.received_stamps) <= set(recording.expected_stamps)
    # scores: the project's metric over the received grids that have ground truth
    evaluator = OccupancyEvaluator(load_preset("demo").grid.spec(), bands_m=())
    for stamp in recording.received_stamps:
        if stamp in recording.gts:
            evaluator.update(recording.preds[stamp], recording.gts[stamp])
    assert evaluator.frames >= 1 and numbers["frames_scored"] == evaluator.frames
    expected = evaluator.results()["all"]
    assert numbers["scores"]["geometry_iou"] == pytest.approx(expected.geometry_iou)
    assert numbers["scores"]["miou"] == pytest.approx(expected.miou)
    # latency and the node's own figures
    latencies = [recording.latency_ms[s] for s in recording.received_stamps if s in recording.latency_ms]
    assert latencies and all(v > 0 for v in latencies)
    assert numbers["latency_end_to_end_ms"]["p50"] == pytest.approx(float(np.percentile(latencies, 50)))
    assert numbers["latency_end_to_end_ms"]["p99"] == pytest.approx(float(np.percentile(latencies, 99)))
    assert numbers["node_published"] >= numbers["frames_received"]
    ks = k_histogram(recording.diagnostics)
    assert {int(k): n for k, n in numbers["k_histogram"].items()} == ks and sum(ks.values()) > 0
    assert recording.node_exit_code == 0
    check_foxglove_mcap(out / FOXGLOVE_FILE, recording, read_foxglove_mcap)
    # the report says it, and says what produced it
    text = (out / "report.md").read_text()
    assert f"| frames dropped | {numbers['frames_dropped']} |" in text
    assert f"| mIoU (classes 1..16) | {100 * expected.miou:.1f} |" in text
    assert report["provenance"]["model_config"] == "demo" and report["provenance"]["machine"]["torch"]
    # nothing half-written: no staging folder or temp file anywhere but inside the finished cache
    leftovers = [p for p in out.rglob(".*") if WORK_DIR not in p.relative_to(out).parts[:1]]
    assert leftovers == []
    (key,) = (out / WORK_DIR).iterdir()
    assert sorted(p.name for p in key.iterdir()) == ["bags", "dataset"]
    return numbers


def check_foxglove_mcap(path: Path, recording, read_foxglove_mcap) -> None:
    """The Foxglove recording: every channel with its schema, one predicted grid per received grid, equal to
    it, the ground truth where the recording has it, and the sweep, six images and TF of each frame."""
    config = load_preset("demo")
    channels, messages = read_foxglove_mcap(path)
    schemas = {
        OCCUPANCY_TOPIC: "foxglove.VoxelGrid",
        GROUND_TRUTH_TOPIC: "foxglove.VoxelGrid",
        LIDAR_TOPIC: "foxglove.PointCloud",
        TF_TOPIC: "foxglove.FrameTransforms",
        **{camera_topic(c): "foxglove.CompressedImage" for c in config.cameras.names},
    }
    assert channels == {topic: (name, "protobuf", "protobuf") for topic, name in schemas.items()}
    grids = {topic: {} for topic in (OCCUPANCY_TOPIC, GROUND_TRUTH_TOPIC)}
    counts: dict[str, int] = {}
    for topic, log_time, msg in messages:
        counts[topic] = counts.get(topic, 0) + 1
        if topic in grids:
            grids[topic][log_time] = labels_from_cells(msg.data, config.grid.spec().shape, msg.cell_stride)
    assert sorted(grids[OCCUPANCY_TOPIC]) == sorted(recording.received_stamps)
    for stamp, labels in grids[OCCUPANCY_TOPIC].items():
        assert np.array_equal(labels, recording.preds[stamp])
    assert grids[GROUND_TRUTH_TOPIC] and set(grids[GROUND_TRUTH_TOPIC]) <= set(recording.gts)
    for stamp, labels in grids[GROUND_TRUTH_TOPIC].items():
        assert np.array_equal(labels, recording.gts[stamp])
    assert all(counts[topic] == len(recording.received_stamps) for topic in schemas if topic != GROUND_TRUTH_TOPIC)


def test_demo_end_to_end_reduced(tmp_path, read_foxglove_mcap, capsys, monkeypatch):
    # The command runs in this process (its node and bag player are processes of their own, as always); the
    # full-size run below goes through `python -m tacocc_ros.cli` like a user's.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the node and the player it starts
    out = tmp_path / "demo_out"
    code, stderr = demo_here(capsys, out, DEMO_CHECKPOINT, "--keyframes", "4", "--image-size", "176x99")
    assert code == 0, stderr[-3000:]
    numbers = check_outputs(out, read_foxglove_mcap)
    assert numbers["scores"]["geometry_iou"] > 0.6  # the trained network, on a scene it has not seen
    for stage in ("generating", "converting", "replaying", "drawing", "finished"):
        assert f"[demo] {stage}" in stderr
    check_direct_path(load_recording(out / "recording"))


def check_direct_path(recording) -> None:
    """The replay through the node over DDS equals the direct path: a Predictor here, on the bag's frames as
    `bag_frames` builds them with the node's sync parameters, run on the frames the node ran (the received
    ones: a frame the keep-latest node dropped never reached its network), with the node's torch threads.
    And the recorded labels are the bag's labels as `bag_frames` reads them. (test_replay.py checks the same
    on a random tiny network through `ReplaySession` directly; those phases are `slow`.)"""
    config = load_preset("demo")
    params = {"slop_s": SLOP_S, "timeout_s": TIMEOUT_S}
    params |= {f"cameras.{name}.offset_s": us * 1e-6 for name, us in load_rig(None).camera_offset_us.items()}
    frames = {item.frame.stamp_ns: item for item in bag_frames(recording.bag, config, node_sync_config(params, config))}
    assert tuple(sorted(frames)) == recording.expected_stamps
    labelled = {stamp: item.labels for stamp, item in frames.items() if item.labels is not None}
    assert labelled and set(recording.gts) == set(labelled)
    for stamp, labels in labelled.items():
        np.testing.assert_array_equal(recording.gts[stamp], labels, err_msg=f"labels of stamp {stamp}")
    threads = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the node's inference_threads 0: every core it may use
    try:
        options = PredictorOptions(device="cpu", timings=False)
        predictor = Predictor.from_checkpoint(DEMO_CHECKPOINT, config, options)
        for stamp in recording.received_stamps:
            prediction = predictor.predict(frames[stamp].frame)
            assert prediction.error is None, prediction.error
            want = np.where((prediction.labels > 0) & (prediction.labels < 17), prediction.labels, 0)
            np.testing.assert_array_equal(recording.preds[stamp], want, err_msg=f"grid of stamp {stamp}")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_demo_full_size_and_second_run_uses_the_cache(tmp_path, read_foxglove_mcap):
    out = tmp_path / "demo_out"
    first = run_demo(out, DEMO_CHECKPOINT, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    check_outputs(out, read_foxglove_mcap)
    second = run_demo(out, DEMO_CHECKPOINT, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "[demo] scenes: cached" in second.stderr and "[demo] bags: cached" in second.stderr
    assert "[demo] generating" not in second.stderr
    check_outputs(out, read_foxglove_mcap)


def test_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    code, stderr = demo_here(capsys, tmp_path / "out", tmp_path / "nope.pt")
    assert code == 2
    assert stderr.strip() == f"tacocc demo: error: --checkpoint {tmp_path / 'nope.pt'}: file not found"
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_network_is_refused_before_any_work(tmp_path, random_checkpoint, capsys):
    code, stderr = demo_here(capsys, tmp_path / "out", random_checkpoint, "--model-config", "tiny")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match the requested config 'tiny'" in lines[0], stderr
    assert str(random_checkpoint) in lines[0]
    assert not (tmp_path / "out").exists()
