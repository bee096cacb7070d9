"""The TensorRT engine cache: one folder per (model, GPU compute capability, TensorRT version, precision);
an engine of another GPU or version is never loaded, a folder that does not match its key is rebuilt."""

import json

import pytest
import torch

from tacocc_core.deploy.tensorrt_cache import STAMP, EngineKey, discard_engines, engine_cache_dir, provider_options


def _key(**changes):
    fields = {
        "model_sha256": "ab" * 32,
        "compute_capability": (8, 6),
        "tensorrt_version": "10.0.1",
        "precision": "fp16",
    }
    return EngineKey(**{**fields, **changes})


def test_every_part_of_the_key_gets_its_own_folder(tmp_path):
    base = engine_cache_dir(tmp_path, _key())
    others = [
        engine_cache_dir(tmp_path, _key(compute_capability=(9, 0))),
        engine_cache_dir(tmp_path, _key(tensorrt_version="10.3.0")),
        engine_cache_dir(tmp_path, _key(precision="fp32")),
        engine_cache_dir(tmp_path, _key(model_sha256="cd" * 32)),
    ]
    assert len({base, *others}) == 5
    assert base.name == "abababababababab-sm86-trt10.0.1-fp16"
    assert json.loads((base / STAMP).read_text())["compute_capability"] == [8, 6]


def test_an_engine_of_another_gpu_or_version_is_rebuilt_not_loaded(tmp_path):
    old = engine_cache_dir(tmp_path, _key())
    (old / "TensorrtExecutionProvider_cache_sm86.engine").write_bytes(b"engine built on an sm86 GPU")
    new = engine_cache_dir(tmp_path, _key(compute_capability=(9, 0), tensorrt_version="10.3.0"))
    assert new != old and list(new.iterdir()) == [new / STAMP]  # empty: onnxruntime builds the engine
    # the same key again finds its engines
    (new / "TensorrtExecutionProvider_cache_sm90.engine").write_bytes(b"engine")
    assert engine_cache_dir(tmp_path, _key(compute_capability=(9, 0), tensorrt_version="10.3.0")) == new
    assert (new / "TensorrtExecutionProvider_cache_sm90.engine").is_file()


def test_a_folder_whose_stamp_names_another_key_is_emptied(tmp_path):
    folder = engine_cache_dir(tmp_path, _key())
    (folder / "model.engine").write_bytes(b"x")
    # copied from a machine with another TensorRT under this folder's name: stamp and name disagree
    (folder / STAMP).write_text(json.dumps(_key(tensorrt_version="8.6.1").as_json()))
    again = engine_cache_dir(tmp_path, _key())
    assert again == folder and not (folder / "model.engine").exists()
    assert json.loads((folder / STAMP).read_text()) == _key().as_json()
    # a stamp cut short (an interrupted write) counts as another key too
    (folder / "model.engine").write_bytes(b"x")
    (folder / STAMP).write_text('{"model_sha')
    engine_cache_dir(tmp_path, _key())
    assert not (folder / "model.engine").exists()


def test_discard_and_bad_precision(tmp_path):
    folder = engine_cache_dir(tmp_path, _key())
    discard_engines(folder)
    assert not folder.exists()
    discard_engines(folder)  # twice is fine
    with pytest.raises(ValueError, match="TensorRT precision must be one of"):
        _key(precision="int8")


def test_provider_options_point_at_the_folder(tmp_path):
    options = provider_options(tmp_path, "fp16")
    assert options["trt_engine_cache_enable"] == "True" and options["trt_engine_cache_path"] == str(tmp_path)
    assert options["trt_fp16_enable"] == "True" and "trt_bf16_enable" not in options
    assert provider_options(tmp_path, "bf16")["trt_bf16_enable"] == "True"
    assert provider_options(tmp_path, "fp32")["trt_fp16_enable"] == "False"


def _tensorrt_missing() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        return f"onnxruntime has no TensorRT execution provider ({onnxruntime.get_available_providers()})"
    from tacocc_core.deploy.tensorrt_cache import tensorrt_version

    return None if tensorrt_version() else "the tensorrt package is not installed"


@pytest.mark.gpu
def test_tensorrt_engines_are_built_cached_and_match_pytorch(tmp_path):
    reason = _tensorrt_missing()
    if reason:
        pytest.skip(f"TensorRT engine build needs a GPU with TensorRT: {reason}")
    from tacocc_core.config import demo_checkpoint_path
    from tacocc_core.deploy.ort_network import OrtNetwork
    from tacocc_core.predictor import Predictor, PredictorOptions
    from tacocc_core.synthetic_batch import synthetic_step_batch

    eager = Predictor.from_checkpoint(demo_checkpoint_path(), options=PredictorOptions(device="cuda"))
    batch = {k: v.cuda() for k, v in synthetic_step_batch(eager.config, 1, 3000).items()}
    network = OrtNetwork(eager.model, None, torch.device("cuda"), "fp32", engine_cache=tmp_path)
    assert all(p[0] == "TensorrtExecutionProvider" for p in network.providers.values())
    engines = sorted(p for p in tmp_path.rglob("*") if p.suffix == ".engine")
    assert len(engines) >= 2  # one per part, each in its key's folder
    stamps = sorted(tmp_path.glob("*/key.json"))
    key = json.loads(stamps[0].read_text())
    assert tuple(key["compute_capability"]) == torch.cuda.get_device_capability()
    with torch.inference_mode():
        a = eager.model.forward_step(batch, torch.eye(4, dtype=torch.float64).numpy(), 0)
        b = network.forward_step(batch, torch.eye(4, dtype=torch.float64).numpy(), 0)
    agreement = float((a.head.fine_logits.argmax(1) == b.head.fine_logits.argmax(1)).float().mean())
    assert agreement >= 0.999
    # a second session loads the cached engines (same files, none added)
    OrtNetwork(eager.model, None, torch.device("cuda"), "fp32", engine_cache=tmp_path)
    assert sorted(p for p in tmp_path.rglob("*") if p.suffix == ".engine") == engines
