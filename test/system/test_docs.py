"""The Markdown documents hold: relative links resolve, repository paths they name exist, guides' commands run.

Documents: every tracked or new `*.md` of the repository except `docs/lab-log.md` (frozen history: it names
files as they were on its dates).

- Links `[text](target)` and images with a relative target must point at an existing file or folder of the
  repository; a `#fragment` into a Markdown file must name one of its headings (GitHub's anchors).
- A path that starts with one of the repository's top-level folders (`tacocc_core/x.py`, `test/unit/...`,
  `config/tiny.yaml`), in prose or in code, must exist. Placeholders (`<...>`, `*`, `{...}`, `...`) are not
  paths.
- Shell code blocks of `docs/guides/*.md` are run, each in a fresh folder where `config/` and `checkpoints/`
  are the repository's and `calib.json` is the fixtures' rig. A block preceded by
  `<!-- doc-test: not run (REASON) -->` is not run (the reason names what it needs: a GPU, nuScenes, a ROS
  install, a running node); `<!-- doc-test: slow -->` runs it only with the slow tests.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FROZEN = {"docs/lab-log.md"}
SKIP_DIRS = {".git", ".venv", "build", "install", "log", "demo_out", "runs", "data", "node_modules"}
TOP_LEVEL = (
    "tacocc_core",
    "tacocc_ros",
    "test",
    "benchmarks",
    "config",
    "launch",
    "rviz",
    "docs",
    "checkpoints",
    "requirements",
    "resource",
)
PATH_IN_TEXT = re.compile(r"(?<![\w./~$-])((?:" + "|".join(TOP_LEVEL) + r")/[\w./*<>{}\[\]-]*)")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MARKER = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
NOT_RUN = re.compile(r"not run \((.+)\)$")
FENCE = re.compile(r"^```([\w-]*)\s*$")
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}


def markdown_files() -> list[Path]:
    """The repository's Markdown documents (tracked and new, not ignored), frozen ones left out."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.md"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        paths = [REPO / p for p in out]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        paths = []
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
            paths += [Path(root) / f for f in files if f.endswith(".md")]
    return sorted(p for p in paths if p.is_file() and p.relative_to(REPO).as_posix() not in FROZEN)


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def without_code(text: str, inline: bool = True) -> str:
    """The text with fenced blocks (and inline code unless `inline` is False) blanked, line numbers kept."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else re.sub(r"`[^`]*`", "``", line) if inline else line)
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in without_code(path.read_text(), inline=False).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            out.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return out


def link_problems(path: Path, text: str | None = None) -> list[str]:
    """Links of `path` (its text, or `text`) whose target or heading is missing; links in code are left out."""
    problems = []
    for number, line in enumerate(without_code(path.read_text() if text is None else text).splitlines(), 1):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            name, _, fragment = target.partition("#")
            resolved = (path.parent / name).resolve() if name else path
            where = f"{rel(path)}:{number}: ({target})"
            if not resolved.is_relative_to(REPO):
                problems.append(f"{where} points outside the repository")
            elif not resolved.exists():
                problems.append(f"{where} does not exist")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                problems.append(f"{where}: no heading #{fragment} in {rel(resolved)}")
    return problems


def named_paths(text: str) -> list[tuple[int, str]]:
    """(line number, path) of each repository path named in `text`, placeholders left out."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        for found in PATH_IN_TEXT.findall(line):
            path = found.split("::")[0].rstrip(".,:;)]")
            if re.search(r"[<>*{}\[\]]|\.\.\.", path):
                continue
            out.append((number, path))
    return out


def path_problems(path: Path, text: str | None = None) -> list[str]:
    """Repository paths named in `path` (its text, or `text`) that do not exist."""
    return [
        f"{rel(path)}:{number}: `{name}` is not in the repository"
        for number, name in named_paths(path.read_text() if text is None else text)
        if not (REPO / name).exists()
    ]


DOCS = markdown_files()


def test_the_documents_are_found():
    names = {rel(p) for p in DOCS}
    assert {"README.md", "docs/results.md", "docs/CONFIGURATION.md"} <= names
    assert any(n.startswith("docs/guides/") for n in names) and any(n.startswith("docs/design/") for n in names)
    assert "docs/lab-log.md" not in names


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_resolve(path):
    problems = link_problems(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_named_repository_paths_exist(path):
    problems = path_problems(path)
    assert not problems, "\n".join(problems)


def test_the_lab_log_says_it_is_history_and_nothing_cites_it_as_current():
    log = REPO / "docs" / "lab-log.md"
    assert "history, not current" in log.read_text().splitlines()[0]
    citing = [rel(p) for p in DOCS if "lab-log.md" in p.read_text() and rel(p) != "docs/results.md"]
    assert not citing, f"only docs/results.md may point to the lab log (as history): {citing}"


def test_a_broken_link_a_missing_anchor_and_a_missing_path_are_caught():
    probe = REPO / "docs" / "guides" / "probe.md"  # read as if it were there; nothing is written
    text = (
        "# Title\n\nSee [node](node.md), [gone](no-such-guide.md), [anchor](node.md#no-such-heading),\n"
        "[ok](node.md#topics), [up](../results.md#make-demo), [out](../../../x.md), [web](https://example.org/a.md),\n"
        "`tacocc_core/no_such_module.py`, `tacocc_core/predictor.py`, `test/unit/<module>.py`,\n"
        "`tacocc_core/model/*.py`.\n"
        "```bash\npython benchmarks/no_such_bench.py   # [not a link](nowhere.md)\n```\n"
    )
    links = link_problems(probe, text)
    paths = path_problems(probe, text)
    assert len(links) == 3, links
    assert "no-such-guide.md" in links[0] and "#no-such-heading" in links[1] and "outside" in links[2], links
    assert [p.split("`")[1] for p in paths] == ["tacocc_core/no_such_module.py", "benchmarks/no_such_bench.py"]


def test_anchors_follow_github():
    assert slug("Load-testing: `tacocc drive`") == "load-testing-tacocc-drive"
    assert slug("Label efficiency: 10 % of the frames labelled") == "label-efficiency-10--of-the-frames-labelled"
    assert slug("Occupancy node parameters (`occupancy_node`, `launch/tacocc.launch.py`)") == (
        "occupancy-node-parameters-occupancy_node-launchtacocclaunchpy"
    )


# --- the guides' command blocks ---------------------------------------------------------------------------


def guide_blocks() -> list[tuple[str, int, str, str]]:
    """(guide, first line, marker, script) of each shell code block of docs/guides/*.md."""
    blocks = []
    for path in sorted((REPO / "docs" / "guides").glob("*.md")):
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if match.group(1) in SHELL_LANGUAGES:
                marker = MARKER.match(lines[i - 1]) if i else None
                blocks.append((rel(path), i + 2, marker.group(1) if marker else "", "\n".join(lines[i + 1 : end])))
            i = end + 1
    return blocks


BLOCKS = guide_blocks()


def block_id(block) -> str:
    return f"{Path(block[0]).stem}:{block[1]}"


def test_every_not_run_block_says_why():
    markers = [(block_id(b), b[2]) for b in BLOCKS if b[2]]
    bad = [(where, m) for where, m in markers if m != "slow" and not NOT_RUN.match(m)]
    assert not bad, f"a marker is `not run (REASON)` or `slow`: {bad}"
    assert sum(1 for b in BLOCKS if not b[2]) >= 3, "most guide commands should run here"


def plain_tacocc_calls(script: str) -> list[list[str]] | None:
    """The arguments of each line when every command of `script` is a plain `tacocc ...` call, else None."""
    calls, joined = [], ""
    for line in script.splitlines():
        if line.rstrip().endswith("\\"):
            joined += line.rstrip()[:-1] + " "
            continue
        joined, text = "", joined + line
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError:
            return None
        if not tokens:
            continue
        if tokens[0] != "tacocc" or any(c in token for token in tokens for c in "|&;<>$`*="):
            return None
        calls.append(tokens[1:])
    return calls


def run_block(block, tmp_path: Path, fixtures: Path, timeout: float, monkeypatch) -> None:
    """Run a guide's block in `tmp_path`: plain `tacocc` calls through the command's own entry point in this
    process (no interpreter start per line), anything else with bash."""
    guide, line, _, script = block
    (tmp_path / "config").symlink_to(REPO / "config")
    (tmp_path / "checkpoints").symlink_to(REPO / "checkpoints")
    shutil.copy(fixtures / "calib.json", tmp_path / "calib.json")
    calls = plain_tacocc_calls(script)
    if calls is not None:
        from tacocc_core.cli import main
        from tacocc_ros.cli import COMMANDS

        monkeypatch.chdir(tmp_path)
        for argv in calls:
            try:
                status = main(argv, COMMANDS)
            except SystemExit as exc:  # argparse refused the line
                status = exc.code
            assert status in (0, None), f"{guide}:{line}: `tacocc {shlex.join(argv)}` exited with {status}"
        return
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{guide}:{line}: the block failed (status {result.returncode})\n{script}\n--- output ---\n"
        + result.stdout[-3000:]
        + result.stderr[-3000:]
    )


def params(marker_wanted: str):
    out = []
    for block in BLOCKS:
        if block[2] == marker_wanted:
            out.append(pytest.param(block, id=block_id(block)))
        elif marker_wanted == "" and NOT_RUN.match(block[2]):
            reason = NOT_RUN.match(block[2]).group(1)
            out.append(pytest.param(block, id=block_id(block), marks=pytest.mark.skip(reason=f"not run: {reason}")))
    return out


@pytest.mark.parametrize("block", params(""))
def test_guide_block_runs(block, tmp_path, nuscenes_frame_dir, monkeypatch):
    run_block(block, tmp_path, nuscenes_frame_dir, 120, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("block", params("slow"))
def test_slow_guide_block_runs(block, tmp_path, nuscenes_frame_dir, monkeypatch):
    run_block(block, tmp_path, nuscenes_frame_dir, 900, monkeypatch)


def test_plain_tacocc_calls_are_told_from_shell_lines():
    assert plain_tacocc_calls("tacocc config tiny   # a comment\ntacocc train --config tiny \\\n  --out o") == [
        ["config", "tiny"],
        ["train", "--config", "tiny", "--out", "o"],
    ]
    assert plain_tacocc_calls("tacocc config tiny > out.txt") is None
    assert plain_tacocc_calls("export X=1\ntacocc labels") is None
    assert plain_tacocc_calls("OMP_NUM_THREADS=1 tacocc labels") is None
