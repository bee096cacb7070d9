"""`tacocc export --onnx` and the exported parts: metadata, atomic writes, the checks on load, and
onnxruntime against PyTorch on held-out generated frames and the real nuScenes frame."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="tacocc export --onnx needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="the ONNX parts run in onnxruntime")

from tacocc_core.checkpoint import load_checkpoint  # noqa: E402
from tacocc_core.cli import main  # noqa: E402
from tacocc_core.config import demo_checkpoint_path, load_preset  # noqa: E402
from tacocc_core.data.nuscenes_reader import NuScenesReader  # noqa: E402
from tacocc_core.deploy import onnx_files  # noqa: E402
from tacocc_core.deploy.onnx_files import (  # noqa: E402
    HEAD_PART,
    IMAGE_PART,
    OnnxModelError,
    config_hash,
    export_onnx,
    export_part_bytes,
)
from tacocc_core.deploy.ort_network import OrtNetwork  # noqa: E402
from tacocc_core.deploy.parts import ImageToVolume, VolumeToLogits, feature_size, frustum_voxel_index  # noqa: E402
from tacocc_core.frame import Frame  # noqa: E402
from tacocc_core.model.tacocc import TACOcc  # noqa: E402
from tacocc_core.predictor import Predictor, PredictorOptions  # noqa: E402
from tacocc_core.synthetic_batch import synthetic_step_batch  # noqa: E402


@pytest.fixture(scope="module")
def demo_model():
    payload = load_checkpoint(demo_checkpoint_path())
    model = TACOcc(payload["config"])
    model.load_state_dict(payload["model"])
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The demo checkpoint exported by the command line."""
    out = tmp_path_factory.mktemp("onnx") / "demo_onnx"
    assert main(["export", str(demo_checkpoint_path()), "--onnx", "--out", str(out)]) == 0
    return out


def _real_frame(folder: Path, stream_id: str = "real") -> Frame:
    """The nuScenes fixture keyframe as a Frame (one sweep, images at their 1600x900)."""
    from PIL import Image

    calib = json.loads((folder / "calib.json").read_text())
    points = np.fromfile(folder / calib["lidar"]["file"], dtype=np.float32).reshape(-1, 5).copy()
    points[:, 4] = 0.0  # the file's fifth value is the ring index; a Frame's is the sweep's time lag
    names = load_preset("demo").cameras.names
    cams = [calib["cameras"][n] for n in names]
    images = np.stack([np.asarray(Image.open(folder / c["file"]).convert("RGB")) for c in cams])
    lidar2global = np.asarray(calib["ego2global"]) @ np.asarray(calib["lidar"]["lidar2ego"])
    return Frame(
        images=images,
        cam2img=np.stack([np.asarray(c["cam2img"], dtype=np.float64) for c in cams]),
        cam2lidar=np.stack([np.linalg.inv(np.asarray(c["lidar2cam"], dtype=np.float64)) for c in cams]),
        points=points,
        lidar2global=lidar2global,
        stamp_ns=int(calib["timestamp_s"] * 1e9),
        stream_id=stream_id,
    )


def test_the_parts_compute_what_the_eager_network_computes(demo_model):
    batch = synthetic_step_batch(demo_model.config, 1, 3000)
    encoder = demo_model.encoder
    with torch.inference_mode():
        masks, points, points_batch = encoder.condition(batch)
        volume, occupied, depth_logits = encoder.lift(encoder.encode_images(batch["images"], masks), batch)
        h, w = demo_model.config.cameras.image_size
        feat_hw = feature_size((h, w), demo_model.config.image_backbone.feature_stride)
        assert feat_hw == tuple(depth_logits.shape[-2:])
        index = frustum_voxel_index(encoder.view_transform, batch["cam2img"], batch["cam2lidar"], feat_hw, (h, w))
        outside = int(np.prod(occupied.shape))  # the row past the grid
        assert 0.05 < float((index == outside).float().mean()) < 0.95  # points inside and outside the grid
        got = ImageToVolume(demo_model)(batch["images"], masks, batch["camera_valid"].float(), index)
        torch.testing.assert_close(got[0], volume, atol=1e-5, rtol=1e-5)
        assert torch.equal(got[1], occupied) and occupied.any()
        torch.testing.assert_close(got[2], depth_logits)

        lidar_volume, lidar_occupied = encoder.encode_lidar(points, points_batch, 1)
        fused, _ = encoder.fuser(volume, occupied, lidar_volume, lidar_occupied)
        generator = torch.Generator().manual_seed(0)
        state = [0.1 * torch.randn(fused.shape[0], 16, *fused.shape[2:], generator=generator) for _ in range(2)]
        hidden, cell = demo_model.temporal.cell(fused, tuple(state))
        head = demo_model.head(hidden)
        out = VolumeToLogits(demo_model)(fused, *state)
    torch.testing.assert_close(out[0], hidden)
    torch.testing.assert_close(out[1], cell)
    torch.testing.assert_close(out[2], head.coarse_logits)
    torch.testing.assert_close(out[3], head.fine_logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(out[4], head.refined) and 0 < head.refined.float().mean() < 1  # both kinds of voxel


def test_export_writes_the_parts_with_metadata(exported, demo_model):
    assert sorted(p.name for p in exported.iterdir()) == [
        "export.json",
        "image_to_volume.onnx",
        "volume_to_logits.onnx",
        "weights.pt",
    ]
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    manifest = json.loads((exported / "export.json").read_text())
    assert manifest["preset"] == "demo" and manifest["opset"] == 17
    assert manifest["config_sha256"] == config_hash(demo_model.config)
    for part in (IMAGE_PART, HEAD_PART):
        proto = onnx.load(exported / f"{part}.onnx")
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["tacocc.part"] == part and props["tacocc.preset"] == "demo" and props["tacocc.opset"] == "17"
        assert props["tacocc.config_sha256"] == manifest["config_sha256"]
        assert props["tacocc.weights_sha256"] == manifest["parts"][part]["weights_sha256"]
        assert proto.opset_import[0].version == 17
        onnx.checker.check_model(proto)
    # the weights of the PyTorch parts travel with the files: the folder alone is a deployment
    assert load_checkpoint(exported / "weights.pt", expected=demo_model.config)["config"].name == "demo"


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(dim=1) == b.argmax(dim=1)).float().mean())


def test_onnxruntime_matches_pytorch_on_held_out_and_real_frames(
    exported, demo_model, synthetic_dataset, nuscenes_frame_dir
):
    """The exported network in onnxruntime against eager PyTorch, frame by frame with the temporal state carried.

    The logits agree to about 1e-4 until the fuser's choice of k (an argmin, in PyTorch on both sides) flips
    on a near tie between two k for a voxel: a rounding-level difference of the exported image part's output
    then changes that voxel's neighbourhood, its logits jump, and the temporal state carries the change to
    the next frames through the ConvLSTM's convolutions (measured: from none to 5 % of the logits more than
    1e-3 apart, depending on the threads). The classes are what such a flip cannot move far: 99.9 % of the
    voxels must agree on every frame, and the logit differences are printed."""
    config = demo_model.config
    reader = NuScenesReader.open(synthetic_dataset, "v1.0-mini", config)  # seed 3: scenes the demo never saw
    frames = []
    for scene in reader.nusc.scene:
        token = scene["first_sample_token"]
        while token:
            frames.append(dataclasses.replace(reader.frame(token), stream_id=scene["token"]))
            token = reader.nusc.get("sample", token)["next"]
    frames.append(_real_frame(nuscenes_frame_dir))
    options = PredictorOptions(device="cpu", timings=False)
    eager = Predictor(config, demo_model.state_dict(), options)
    onnx_predictor = Predictor(
        config, demo_model.state_dict(), dataclasses.replace(options, backend="onnxruntime", onnx_dir=str(exported))
    )
    worst_diff, worst_agreement, worst_outside = 0.0, 1.0, 0.0
    for frame in frames:
        step = eager._to_step_batch(frame)
        with torch.inference_mode():
            a = eager._network.forward_step(step, frame.lidar2global, frame.stamp_ns, frame.stream_id, eager._state)
            b = onnx_predictor._network.forward_step(
                step, frame.lidar2global, frame.stamp_ns, frame.stream_id, onnx_predictor._state
            )
        eager._state, onnx_predictor._state = a.temporal.state, b.temporal.state
        assert a.temporal.reset == b.temporal.reset
        diff = (a.head.fine_logits - b.head.fine_logits).abs()
        worst_diff = max(worst_diff, float(diff.max()))
        worst_outside = max(worst_outside, float((diff > 1e-3).float().mean()))
        worst_agreement = min(worst_agreement, _agreement(a.head.fine_logits, b.head.fine_logits))
    assert len(frames) == 9 and sum(f.stream_id == frames[0].stream_id for f in frames) == 4
    print(
        f"held-out + real frames: max |logit difference| {worst_diff:.2e}, share over 1e-3 {worst_outside:.2e}, "
        f"worst class agreement {worst_agreement:.5f}"
    )
    assert worst_agreement >= 0.999


def test_a_missing_or_truncated_file_is_named(exported, demo_model, tmp_path):
    missing = tmp_path / "nothing"
    with pytest.raises(OnnxModelError, match=f"{missing / 'image_to_volume.onnx'}: ONNX file not found"):
        OrtNetwork(demo_model, missing)
    broken = tmp_path / "broken"
    broken.mkdir()
    data = (exported / "image_to_volume.onnx").read_bytes()
    (broken / "image_to_volume.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxModelError, match=f"{broken / 'image_to_volume.onnx'}: onnxruntime cannot load it"):
        OrtNetwork(demo_model, broken)


def test_an_onnx_file_of_another_network_is_refused(exported, demo_model, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "image_to_volume.onnx").write_bytes((exported / "image_to_volume.onnx").read_bytes())
    torch.manual_seed(0)
    tiny = TACOcc(load_preset("tiny")).eval()
    data, _ = export_part_bytes(tiny, HEAD_PART)
    (folder / "volume_to_logits.onnx").write_bytes(data)
    where = folder / "volume_to_logits.onnx"
    with pytest.raises(OnnxModelError, match=f"{where}: exported from another network \\(preset 'tiny'"):
        OrtNetwork(demo_model, folder)
    # an ONNX file that is no tacocc part at all (a plain convolution)
    conv = torch.nn.Conv2d(3, 4, 3)
    torch.onnx.export(conv, (torch.zeros(1, 3, 8, 8),), str(where), dynamo=False, opset_version=17)
    with pytest.raises(OnnxModelError, match=f"{where}: not a part of a tacocc network"):
        OrtNetwork(demo_model, folder)
    # the parts swapped: the image part's file under the head's name
    (folder / "volume_to_logits.onnx").write_bytes((exported / "image_to_volume.onnx").read_bytes())
    with pytest.raises(OnnxModelError, match=f"{where}: holds the part 'image_to_volume', expected 'volume_to_logits'"):
        OrtNetwork(demo_model, folder)


def test_an_export_of_other_weights_is_refused(exported, demo_model):
    torch.manual_seed(1)
    other = TACOcc(demo_model.config).eval()
    with pytest.raises(OnnxModelError, match="exported from other weights of network 'demo'"):
        OrtNetwork(other, exported)


def test_an_interrupted_export_keeps_the_previous_folder(exported, demo_model, tmp_path, monkeypatch):
    out = tmp_path / "deploy"
    export_onnx(demo_model, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".onnx"}

    def fail(model, part):
        if part == HEAD_PART:
            raise RuntimeError("disk full")
        return real(model, part)

    real = onnx_files.export_part_bytes
    monkeypatch.setattr(onnx_files, "export_part_bytes", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_onnx(demo_model, out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".onnx"} == before
    assert [p.name for p in tmp_path.iterdir()] == ["deploy"]  # no temporary folder left


def test_export_command_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.pt"), "--onnx", "--out", str(tmp_path / "x")]) == 2
    assert "none.pt: checkpoint not found" in capsys.readouterr().err
    assert main(["export", str(demo_checkpoint_path()), "--onnx", "--half", "--out", str(tmp_path / "x")]) == 2
    assert "--half applies to checkpoints" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["export", str(demo_checkpoint_path()), "--onnx", "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_the_nuscenes_preset_exports_and_matches_pytorch_on_the_real_frame(nuscenes_frame_dir, tmp_path):
    """ResNet-50 preset (random weights): export through the command line's path, onnxruntime against PyTorch."""
    config = load_preset("nuscenes_r50_256x704")
    torch.manual_seed(0)
    model = TACOcc(config).eval()
    export_onnx(model, tmp_path / "r50")
    options = PredictorOptions(device="cpu", timings=False)
    eager = Predictor(config, model.state_dict(), options)
    ort_options = dataclasses.replace(options, backend="onnxruntime", onnx_dir=str(tmp_path / "r50"))
    onnx_predictor = Predictor(config, model.state_dict(), ort_options)
    frame = _real_frame(nuscenes_frame_dir)
    step = eager._to_step_batch(frame)
    with torch.inference_mode():
        a = eager._network.forward_step(step, frame.lidar2global, frame.stamp_ns, frame.stream_id)
        b = onnx_predictor._network.forward_step(step, frame.lidar2global, frame.stamp_ns, frame.stream_id)
    diff = float((a.head.fine_logits - b.head.fine_logits).abs().max())
    agreement = _agreement(a.head.fine_logits, b.head.fine_logits)
    print(f"nuScenes preset, real frame: max |logit difference| {diff:.2e}, class agreement {agreement:.5f}")
    assert agreement >= 0.999 and diff < 1e-2
