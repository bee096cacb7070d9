import json

import numpy as np
import pytest

from tacocc_core.cli import main
from tacocc_core.data.synthetic.writer import GenerateOptions, generate_dataset


def _small(seed: int) -> GenerateOptions:
    return GenerateOptions(
        scenes=1, keyframes=2, seed=seed, image_size=(64, 36), sweeps_per_keyframe=1, lidar_azimuths=180
    )


def test_deterministic_per_seed(tmp_path, nuscenes_frame_dir):
    calib = nuscenes_frame_dir / "calib.json"
    a = generate_dataset(tmp_path / "a", _small(7), calib)
    b = generate_dataset(tmp_path / "b", _small(7), calib)
    c = generate_dataset(tmp_path / "c", _small(8), calib)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "v1.0-mini" / "sample.json").read_bytes() != (c / "v1.0-mini" / "sample.json").read_bytes()
    lidar = [p for p in files_a if "LIDAR_TOP" in str(p) and p.suffix == ".bin"]
    assert len(lidar) == 4  # 2 keyframes, each with one sweep before it
    pts = np.fromfile(a / lidar[0], np.float32).reshape(-1, 5)
    assert set(np.unique(pts[:, 4]).astype(int)) <= set(range(32)) and len(pts) > 1000


def test_atomic_and_refuses_existing(tmp_path, nuscenes_frame_dir):
    calib = nuscenes_frame_dir / "calib.json"
    out = tmp_path / "ds"
    with pytest.raises(ValueError, match="keyframes"):
        generate_dataset(out, GenerateOptions(keyframes=0), calib)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    out.mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        generate_dataset(out, _small(0), calib)


def test_cli(tmp_path, nuscenes_frame_dir, capsys):
    out = tmp_path / "cli"
    argv = [
        "generate-scenes",
        "--out",
        str(out),
        "--scenes",
        "2",
        "--keyframes",
        "2",
        "--seed",
        "4",
        "--image-size",
        "64x36",
        "--sweeps",
        "0",
        "--lidar-azimuths",
        "120",
        "--workers",
        "1",
        "--version",
        "v1.0-synth",
        "--calib",
        str(nuscenes_frame_dir / "calib.json"),
    ]
    assert main(argv) == 0
    assert "2 scenes x 2 keyframes" in capsys.readouterr().out
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["train"]) == 1 and len(splits["val"]) == 1
    assert (out / "v1.0-synth" / "scene.json").is_file()
    assert main(argv) == 2  # the folder exists now: a clear error, no traceback
    assert "already exists" in capsys.readouterr().err
