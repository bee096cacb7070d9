"""tacocc_core.inference_process: the Predictor in a spawned child gives the in-process Predictor's grids.

The real fixture keyframe and `checkpoints/demo.pt`, one torch thread on both sides (same arithmetic).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tacocc_core.checkpoint import CheckpointError
from tacocc_core.config import load_preset
from tacocc_core.frame import Frame
from tacocc_core.geometry import invert_transform
from tacocc_core.inference_process import InferenceProcess, InferenceProcessError, InferenceProcessOptions
from tacocc_core.predictor import Predictor, PredictorOptions

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "checkpoints" / "demo.pt"


def fixture_frame(folder: Path, config, stamp_ns: int) -> Frame:
    """The real keyframe as a Frame: full-size images (the Predictor resizes), the sweep with time lag 0."""
    calib = json.loads((folder / "calib.json").read_text())
    lidar2ego = np.asarray(calib["lidar"]["lidar2ego"], dtype=np.float64)
    names = config.cameras.names
    images = np.stack([np.asarray(Image.open(folder / calib["cameras"][n]["file"]).convert("RGB")) for n in names])
    cam2img = np.stack([np.asarray(calib["cameras"][n]["cam2img"], dtype=np.float64) for n in names])
    cam2lidar = np.stack([invert_transform(lidar2ego) @ np.asarray(calib["cameras"][n]["cam2ego"]) for n in names])
    raw = np.fromfile(folder / calib["lidar"]["file"], dtype=np.float32).reshape(-1, 5)
    points = np.concatenate([raw[:, :4], np.zeros((len(raw), 1), np.float32)], axis=1)
    lidar2global = np.asarray(calib["ego2global"], dtype=np.float64) @ lidar2ego
    return Frame(images, cam2img, cam2lidar, points, lidar2global, stamp_ns, stream_id="LIDAR_TOP")


@pytest.fixture(scope="module")
def config():
    return load_preset("demo")


@pytest.fixture(scope="module")
def frames(nuscenes_frame_dir, config):
    return [fixture_frame(nuscenes_frame_dir, config, 10**18 + i * 50_000_000) for i in range(3)]


@pytest.fixture(scope="module")
def child(config):
    process = InferenceProcess(config, str(CHECKPOINT), options=InferenceProcessOptions(threads=1))
    yield process
    process.close()


def shared_blocks() -> set[str]:
    """Python's shared-memory blocks (psm_*): other processes' segments (Fast DDS, ...) come and go meanwhile."""
    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir() if p.name.startswith("psm_")} if shm.is_dir() else set()


def test_the_child_gives_the_in_process_grids_frame_by_frame(config, frames, child):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = Predictor.from_checkpoint(CHECKPOINT, config, PredictorOptions(device="cpu", timings=False))
        child.reset()
        for frame in frames:  # the temporal state is carried on both sides
            want, got = reference.predict(frame), child.predict(frame)
            assert want.error is None and got.error is None, (want.error, got.error)
            assert got.labels.shape == tuple(config.grid.spec().shape) and got.labels.dtype == np.uint8
            np.testing.assert_array_equal(got.labels, want.labels)
            assert got.temporal_reset == want.temporal_reset
            assert got.k_histogram == want.k_histogram
        assert (want.labels > 0).sum() > 1000  # a real scene, not an empty grid
        reference.reset()
        child.reset()
        np.testing.assert_array_equal(child.predict(frames[0]).labels, reference.predict(frames[0]).labels)
    finally:
        torch.set_num_threads(threads)
    assert child.device == "cpu"


def test_more_points_than_the_shared_block_holds_grow_it(config, frames, child):
    frame = frames[0]
    many = Frame(**{**frame.__dict__, "points": np.concatenate([frame.points] * 4)})
    assert child.predict(many).error is None
    assert child.predict(frame).error is None


def test_a_checkpoint_that_does_not_fit_is_refused_and_the_weights_stay(tmp_path, frames, child):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    before = child.predict(frames[0]).labels
    with pytest.raises(CheckpointError):
        child.reload(str(bad))
    child.reload(str(CHECKPOINT))
    child.reset()
    assert child.alive
    child.predict(frames[0])
    np.testing.assert_array_equal(child.predict(frames[0]).labels.shape, before.shape)


def test_a_killed_child_is_reported_and_a_restart_serves_again(frames, child):
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(InferenceProcessError, match="SIGKILL"):
        child.predict(frames[0])
    child.restart()
    assert child.restarts == 1 and child.alive
    assert child.predict(frames[0]).error is None


def test_close_stops_the_child_and_frees_its_shared_memory(frames, child):
    process = child  # the module's child, after the tests above (a new one would cost a start): closed here
    process.predict(frames[0])
    pid = process.pid
    # This process's blocks by name: /dev/shm also holds those of every other process that comes and goes
    # meanwhile (DDS transports, the inference processes of another test worker).
    ours = {block.name for block in process._arrays._blocks.values()}
    assert {"images", "points", "labels"} <= set(process._arrays._blocks) and ours <= shared_blocks()
    process.close()
    process.close()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert ours & shared_blocks() == set()
    with pytest.raises(InferenceProcessError, match="not running"):
        process.predict(frames[0])


def test_an_interrupted_process_answers_no_more_and_closes_at_once(config, frames):
    process = InferenceProcess(config, None, options=InferenceProcessOptions(threads=1))
    process.interrupt()
    with pytest.raises(InferenceProcessError, match="interrupted"):
        process.predict(frames[0])
    process.close(timeout_s=5.0)
    assert not process.alive


def test_a_checkpoint_of_another_network_stops_the_start(tmp_path):
    with pytest.raises(CheckpointError):
        InferenceProcess(load_preset("tiny"), str(CHECKPOINT), options=InferenceProcessOptions(threads=1))
