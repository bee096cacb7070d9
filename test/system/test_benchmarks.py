"""Every benchmark, study and experiment driver answers `--help`, run the one documented way.

Python scripts run as `python -m benchmarks.<folder>.<script>` from the repository root (here in-process
with runpy, which is what `-m` does, so that the suite does not start a dozen interpreters; one real
`python -m` checks the command itself). Shell scripts print their usage on `--help` and do nothing else.
"""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
FOLDERS = ("speed", "studies", "experiments")


def _is_script(path: Path) -> bool:
    return 'if __name__ == "__main__":' in path.read_text()


PY_SCRIPTS = sorted(p for p in BENCHMARKS.rglob("*.py") if _is_script(p))
SH_SCRIPTS = sorted(BENCHMARKS.rglob("*.sh"))


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def test_every_script_lives_in_a_purpose_folder_that_is_a_package():
    assert PY_SCRIPTS and SH_SCRIPTS
    for path in [*PY_SCRIPTS, *SH_SCRIPTS]:
        assert path.parent.name in FOLDERS, f"{path.relative_to(REPO)}: not in one of {FOLDERS}"
    for folder in (BENCHMARKS, *(BENCHMARKS / f for f in FOLDERS)):
        assert (folder / "__init__.py").is_file(), f"{folder.relative_to(REPO)} is not a package"


def test_the_index_names_every_script(repo_root):
    index = (repo_root / "benchmarks" / "README.md").read_text()
    for path in [*PY_SCRIPTS, *SH_SCRIPTS]:
        assert path.name in index, f"benchmarks/README.md does not describe {path.relative_to(REPO)}"


@pytest.mark.parametrize("path", PY_SCRIPTS, ids=lambda p: p.stem)
def test_python_script_help(path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO))  # what `python -m` from the repository root puts first
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(_module(path), run_name="__main__", alter_sys=True)
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("usage:"), out[:500]
    assert len(out.splitlines()) > 2  # the arguments are described, not just the usage line


def test_python_dash_m_from_the_repository_root_needs_no_pythonpath():
    env = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: the root on sys.path comes from -m alone
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.experiments.summarize_seeds", "--help"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


@pytest.mark.parametrize("path", SH_SCRIPTS, ids=lambda p: p.stem)
def test_shell_script_help(path, tmp_path):
    # From an empty folder: a script that ignored --help would fail there or write into it.
    result = subprocess.run(["bash", str(path), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout[:300]
    assert len(result.stdout.splitlines()) > 3
    assert list(tmp_path.iterdir()) == []


def test_summarize_seeds_per_seed_rows_and_lidar_baseline(tmp_path, capsys):
    from benchmarks.experiments.summarize_seeds import main

    def report(iou: float, miou: float, lidar: float) -> dict:
        scores = {"geometry_iou": iou, "miou": miou, "class_iou": {"car": miou}}
        return {"checkpoint": "latest.pt", "scores": {"all": scores}, "flicker": {"flicker": 0.02},
                "lidar_accumulation_iou": {"all": lidar}}  # fmt: skip

    for seed, (iou, miou) in enumerate([(0.80, 0.40), (0.90, 0.50)]):
        folder = tmp_path / "geo" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "eval_val.json").write_text(json.dumps(report(iou, miou, 0.25)))
    assert main(["--per-seed", "--lidar", str(tmp_path), "geo"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| geo | 0,1 | latest.pt | 85.00 +- 7.07 | 45.00 +- 7.07 |")
    assert rows[3].startswith("| geo seed 0 | 0 | latest.pt | 80.00 | 40.00 |")
    assert rows[4].startswith("| geo seed 1 | 1 | latest.pt | 90.00 | 50.00 |")
    assert rows[5] == "| LiDAR accumulation | - | - | 25.00 | - | - | - | - |"
