import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tacocc_core.batch import batch_at, frames_to_batch
from tacocc_core.checkpoint import CheckpointError, save_checkpoint
from tacocc_core.config import load_preset
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.frame import Frame
from tacocc_core.labels import IGNORE, NUM_CLASSES
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.predictor import Prediction, Predictor, PredictorOptions, native_bf16

STAGES = ("preprocess", "conditioning", "image_branch", "view_transform", "lidar_branch", "fuser", "temporal", "head")


@pytest.fixture(scope="module")
def tiny():
    return load_preset("tiny")


@pytest.fixture(scope="module")
def frames(synthetic_dataset, tiny):
    """Three consecutive keyframes of one generated scene, read by the dataset reader (images at 160x90)."""
    reader = NuScenesReader.open(synthetic_dataset, "v1.0-mini", tiny)
    scene = reader.nusc.scene[0]
    tokens, token = [], scene["first_sample_token"]
    while token and len(tokens) < 3:
        tokens.append(token)
        token = reader.nusc.get("sample", token)["next"]
    return [dataclasses.replace(reader.frame(t), stream_id=scene["token"]) for t in tokens]


@pytest.fixture(scope="module")
def weights(tiny):
    torch.manual_seed(0)
    return TACOcc(tiny).state_dict()


def test_prediction_shapes_timings_and_probabilities(tiny, weights, frames):
    predictor = Predictor(tiny, weights, PredictorOptions(device="cpu"))
    result = predictor.predict(frames[0], return_probabilities=True)
    assert result.error is None
    assert result.labels.shape == tiny.grid.spec().shape == (48, 48, 8) and result.labels.dtype == np.uint8
    assert result.labels.max() < NUM_CLASSES
    assert result.probabilities.shape == (NUM_CLASSES, 48, 48, 8)
    np.testing.assert_allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(result.probabilities.argmax(axis=0), result.labels)
    assert (
        set(STAGES) <= set(result.timings_ms)
        and result.timings_ms["total"] >= sum(result.timings_ms[s] for s in STAGES) * 0.99
    )
    assert set(result.k_histogram) == {"image", "lidar"}
    assert result.temporal_reset == "no previous state"


def test_predict_equals_the_network_run_directly(tiny, weights, frames):
    """The Predictor adds no processing of its own: same labels as TACOcc.forward_step on the same tensors."""
    predictor = Predictor(tiny, weights, PredictorOptions(device="cpu"))
    model = TACOcc(tiny)
    model.load_state_dict(weights)
    model.eval()
    state = None
    for frame in frames:
        got = predictor.predict(frame)
        fitted = predictor._fit_images(frame)
        step = batch_at(frames_to_batch([[dataclasses.replace(fitted, labels=None)]], tiny.grid.spec().shape), 0)
        with torch.inference_mode():
            out = model.forward_step(step, frame.lidar2global, frame.stamp_ns, frame.stream_id, state)
        state = out.temporal.state
        np.testing.assert_array_equal(got.labels, out.head.fine_logits[0].argmax(0).numpy().astype(np.uint8))


def test_streaming_state_and_resets(tiny, weights, frames):
    predictor = Predictor(tiny, weights, PredictorOptions(device="cpu"))
    assert predictor.predict(frames[0]).temporal_reset == "no previous state"
    carried = predictor.predict(frames[1])
    assert carried.temporal_reset is None
    back = predictor.predict(frames[0])  # a bag loop: time goes backwards
    assert "backwards" in back.temporal_reset
    other_stream = predictor.predict(dataclasses.replace(frames[1], stream_id="another bag"))
    assert "stream" in other_stream.temporal_reset
    late = dataclasses.replace(frames[2], stamp_ns=frames[1].stamp_ns + int(5e9), stream_id="another bag")
    assert "gap" in predictor.predict(late).temporal_reset
    # The state matters: frame 1 after frame 0 differs from frame 1 after a reset.
    predictor.reset()
    fresh = predictor.predict(frames[1])
    assert fresh.temporal_reset == "no previous state"
    assert not np.array_equal(fresh.labels, carried.labels)


def test_bad_frames_return_a_valid_grid(tiny, weights, frames):
    predictor = Predictor(tiny, weights, PredictorOptions(device="cpu"))
    frame = frames[0]
    blank = frame.images.copy()
    blank[2] = 0
    valid = frame.camera_valid.copy()
    valid[2] = False
    cases = {
        "missing camera": dataclasses.replace(frame, images=blank, camera_valid=valid),
        "empty cloud": dataclasses.replace(frame, points=np.zeros((0, 5), np.float32)),
        "NaN cloud": dataclasses.replace(frame, points=np.full((100, 5), np.nan, np.float32)),
        "points all outside": dataclasses.replace(frame, points=np.full((50, 5), 1e4, np.float32)),
    }
    for name, case in cases.items():
        result = predictor.predict(case)
        assert result.error is None, name
        assert result.labels.shape == (48, 48, 8) and result.labels.max() < NUM_CLASSES, name


def test_images_of_another_size_are_fitted(tiny, weights, frames):
    predictor = Predictor(tiny, weights, PredictorOptions(device="cpu"))
    frame = frames[0]
    assert frame.images.shape[1:3] == tuple(tiny.cameras.image_size)
    big = np.stack([np.kron(img, np.ones((2, 2, 1), np.uint8)) for img in frame.images])  # 2x upsampled
    scale = np.diag([2.0, 2.0, 1.0])
    fitted = predictor._fit_images(
        dataclasses.replace(frame, images=big, cam2img=np.stack([scale @ k for k in frame.cam2img]))
    )
    assert fitted.images.shape == frame.images.shape
    np.testing.assert_allclose(fitted.cam2img, frame.cam2img, atol=1e-6)
    assert np.abs(fitted.images.astype(int) - frame.images.astype(int)).mean() < 8


def test_unprocessable_frame_is_reported_not_raised(tiny, weights, frames):
    predictor = Predictor(tiny, weights, PredictorOptions(device="cpu"))
    frame = frames[0]
    five = Frame(
        images=frame.images[:5],
        cam2img=frame.cam2img[:5],
        cam2lidar=frame.cam2lidar[:5],
        points=frame.points,
        lidar2global=frame.lidar2global,
        stamp_ns=frame.stamp_ns,
    )
    result = predictor.predict(five)
    assert isinstance(result, Prediction)
    assert "frame has 5 cameras, the config expects 6" in result.error
    assert (result.labels == IGNORE).all() and result.labels.shape == (48, 48, 8)
    assert predictor.predict(frame).error is None  # and the next good frame is served


def test_checkpoints_load_refuse_and_reload(tmp_path, tiny, weights, frames):
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, weights, tiny, step=3)
    predictor = Predictor.from_checkpoint(path, tiny, PredictorOptions(device="cpu"))
    reference = Predictor(tiny, weights, PredictorOptions(device="cpu")).predict(frames[0]).labels
    np.testing.assert_array_equal(predictor.predict(frames[0]).labels, reference)

    other = dataclasses.replace(tiny, fuser=dataclasses.replace(tiny.fuser, mode="fixed"))
    with pytest.raises(CheckpointError, match="differing keys: fuser.mode"):
        Predictor.from_checkpoint(path, other)

    torch.manual_seed(1)
    other_weights = TACOcc(tiny).state_dict()
    second = tmp_path / "second.pt"
    save_checkpoint(second, other_weights, tiny)
    predictor.reload(second)
    expected = Predictor(tiny, other_weights, PredictorOptions(device="cpu")).predict(frames[0]).labels
    np.testing.assert_array_equal(predictor.predict(frames[0]).labels, expected)
    (tmp_path / "broken.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="broken.pt"):
        predictor.reload(tmp_path / "broken.pt")
    predictor.reset()  # the frame was just seen: start afresh so that only the weights decide
    np.testing.assert_array_equal(predictor.predict(frames[0]).labels, expected)  # old weights kept


def test_bf16_autocast_runs_on_cpu(tiny, weights, frames):
    result = Predictor(tiny, weights, PredictorOptions(device="cpu", precision="bf16")).predict(frames[0])
    assert result.error is None and result.labels.shape == (48, 48, 8)


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU flags from Linux's /proc/cpuinfo")
def test_native_bf16_follows_the_cpu_flags():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    assert native_bf16(torch.device("cpu")) == bool(flags & {"avx512_bf16", "amx_tile"})


def test_options_are_checked(tiny):
    with pytest.raises(ValueError, match="precision must be fp32, bf16 or fp16, got 'int8'"):
        Predictor(tiny, options=PredictorOptions(device="cpu", precision="int8"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Predictor(tiny, options=PredictorOptions(device="cuda"))
