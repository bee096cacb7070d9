import subprocess
import sys

import yaml

from tacocc_core.cli import main


def test_config_prints_full_preset(capsys):
    assert main(["config", "tiny"]) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load(out)
    assert data["name"] == "tiny"
    assert data["grid"]["voxel_size"] == 1.0
    assert "# grid shape: (48, 48, 8)" in out


def test_config_error_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("grid:\n  voxel_size: -1.0\n")
    assert main(["config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"tacocc config: error: {path}: invalid configuration" in err
    assert "grid.voxel_size: Input should be greater than 0" in err
    assert "Traceback" not in err


def test_labels_table(capsys):
    assert main(["labels"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 18
    assert lines[4].split()[:2] == ["4", "car"]
    assert lines[-1].split()[:2] == ["255", "ignore"]


def test_console_script_installed():
    bin_dir = __import__("pathlib").Path(sys.executable).parent
    out = subprocess.run([str(bin_dir / "tacocc"), "--help"], capture_output=True, text=True, check=True).stdout
    assert "config" in out and "labels" in out
