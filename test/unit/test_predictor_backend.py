"""The Predictor's onnxruntime backend: same grids as eager PyTorch through `predict`, its options and errors."""

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnxruntime backend needs onnxruntime")
pytest.importorskip("onnx", reason="the in-memory export needs the onnx package")

from tacocc_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from tacocc_core.config import demo_checkpoint_path, load_preset  # noqa: E402
from tacocc_core.data.nuscenes_reader import NuScenesReader  # noqa: E402
from tacocc_core.deploy.onnx_files import OnnxModelError, export_onnx  # noqa: E402
from tacocc_core.deploy.ort_network import OrtNetwork  # noqa: E402
from tacocc_core.labels import IGNORE  # noqa: E402
from tacocc_core.model.tacocc import TACOcc  # noqa: E402
from tacocc_core.predictor import Predictor, PredictorOptions  # noqa: E402

ORT_STAGES = (
    "preprocess",
    "conditioning",
    "lidar_branch",
    "image_to_volume",
    "fuser",
    "warp",
    "volume_to_logits",
    "postprocess",
)


@pytest.fixture(scope="module")
def demo():
    return load_preset("demo")


@pytest.fixture(scope="module")
def frames(synthetic_dataset, demo):
    """The four keyframes of a generated scene (seed 3, not the demo checkpoint's training scenes)."""
    reader = NuScenesReader.open(synthetic_dataset, "v1.0-mini", demo)
    scene = reader.nusc.scene[0]
    out, token = [], scene["first_sample_token"]
    while token:
        out.append(dataclasses.replace(reader.frame(token), stream_id=scene["token"]))
        token = reader.nusc.get("sample", token)["next"]
    return out


@pytest.fixture(scope="module")
def onnx_predictor():
    options = PredictorOptions(backend="onnxruntime", onnx_parts="all")
    return Predictor.from_checkpoint(demo_checkpoint_path(), options=options)


def k_total(histogram: dict) -> int:
    """Voxels counted in a `k_histogram` ({modality: {scale: {k: count}}})."""
    return sum(n for scales in histogram.values() for ks in scales.values() for n in ks.values())


def k_flips(a: dict, b: dict) -> int:
    """The fewest voxels whose k differs between two histograms of the same voxels (each move changes two
    counts); a different set of modalities, scales or voxel counts is a mismatch of every voxel."""
    if {m: {s: sum(ks.values()) for s, ks in scales.items()} for m, scales in a.items()} != {
        m: {s: sum(ks.values()) for s, ks in scales.items()} for m, scales in b.items()
    }:
        return max(k_total(a), 1)
    moved = 0
    for m, scales in a.items():
        for s, ks in scales.items():
            other = b[m][s]
            moved += sum(abs(ks.get(k, 0) - other.get(k, 0)) for k in set(ks) | set(other)) // 2
    return moved


def test_predict_gives_the_grids_of_the_torch_backend(onnx_predictor, frames):
    eager = Predictor.from_checkpoint(demo_checkpoint_path(), options=PredictorOptions(device="cpu"))
    onnx_predictor.reset()
    assert isinstance(onnx_predictor._network, OrtNetwork)
    assert onnx_predictor._network.providers["image_to_volume"] == ["CPUExecutionProvider"]
    for i, frame in enumerate(frames):
        a = eager.predict(frame, return_probabilities=True)
        b = onnx_predictor.predict(frame, return_probabilities=True)
        assert a.error is None and b.error is None
        assert b.temporal_reset == a.temporal_reset == ("no previous state" if i == 0 else None)
        assert (a.labels == b.labels).mean() >= 0.999
        # The backends' kernels sum in different orders: float32 rounding, at most 1.0e-6 in a probability
        # over these frames with one or two threads on this project's AMD EPYC machine; on another CPU the
        # kernels differ more (1.8e-4 at the 0.999 quantile on a CI machine). The one discontinuity is the
        # fuser's k (the candidate nearest the expected k): a voxel whose expectation lies within that
        # rounding of a midpoint between candidates may take the other k, and the grid near it then differs
        # by more. So the fuser (PyTorch) must see the same volumes up to such voxels, and all but the
        # voxels near them must agree to rounding.
        assert k_flips(a.k_histogram, b.k_histogram) <= 1e-3 * k_total(a.k_histogram), (a.k_histogram, b.k_histogram)
        # A wrong weight, input or stage order moves probabilities by 1e-2 and more.
        assert np.quantile(np.abs(a.probabilities - b.probabilities), 0.999) < 1e-3
        assert tuple(b.timings_ms)[:-1] == ORT_STAGES and b.timings_ms["total"] > 0
    assert len(frames) == 4 and (b.labels != 0).any()


def test_a_bad_frame_gives_an_unknown_grid_and_the_next_frame_runs(onnx_predictor, frames):
    bad = dataclasses.replace(frames[0], cam2img=np.zeros_like(frames[0].cam2img))  # intrinsics not invertible
    result = onnx_predictor.predict(bad)
    assert result.error is not None and (result.labels == IGNORE).all() and result.temporal_reset == "error"
    assert onnx_predictor.predict(frames[1]).error is None


def test_backend_and_precision_options_are_checked(demo):
    with pytest.raises(ValueError, match="backend must be one of torch, onnxruntime, got 'tensorflow'"):
        Predictor(demo, None, PredictorOptions(backend="tensorflow"))
    with pytest.raises(ValueError, match="backend onnxruntime runs bf16 only on CUDA with the TensorRT"):
        Predictor(demo, None, PredictorOptions(device="cpu", backend="onnxruntime", precision="bf16"))


def test_an_export_folder_runs_its_weights_and_refuses_others(tmp_path, frames):
    payload = load_checkpoint(demo_checkpoint_path())
    model = TACOcc(payload["config"])
    model.load_state_dict(payload["model"])
    export_onnx(model.eval(), tmp_path / "deploy")
    options = PredictorOptions(backend="onnxruntime", onnx_dir=str(tmp_path / "deploy"), onnx_parts="image")
    predictor = Predictor.from_checkpoint(tmp_path / "deploy" / "weights.pt", options=options)
    assert predictor._network.parts == ("image_to_volume",)  # the ConvLSTM + head in PyTorch
    first = predictor.predict(frames[0])
    assert first.error is None and tuple(first.timings_ms)[-4:] == ("temporal", "head", "postprocess", "total")
    torch.manual_seed(5)
    save_checkpoint(tmp_path / "other.pt", TACOcc(payload["config"]).state_dict(), payload["config"])
    with pytest.raises(CheckpointError, match="other.pt: does not fit the ONNX files: .*exported from other weights"):
        predictor.reload(tmp_path / "other.pt")
    predictor.reset()
    assert np.array_equal(predictor.predict(frames[0]).labels, first.labels)  # the running network was kept
    with pytest.raises(OnnxModelError, match="exported from other weights"):
        Predictor.from_checkpoint(tmp_path / "other.pt", options=options)
