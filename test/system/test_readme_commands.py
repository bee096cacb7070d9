"""Every `tacocc ...` command line of the documents parses with the real `tacocc` parser.

Documents: README.md, checkpoints/README.md and docs/**/*.md except docs/lab-log.md (frozen history). Code
blocks and inline `tacocc ...` spans are parsed, never run here (test_docs.py runs the guides' blocks).
Notation the documents use and how it is read:
- `[--opt VALUE]`: optional; the line is parsed with every optional part and with none of them;
- `a|b` as a value: alternatives; the first one is parsed;
- `...` outside brackets: elided arguments; then each option given must exist for the subcommand and
  its value must pass the option's type and choices, but required arguments are not demanded;
- `$ ` at the start of lines marks a console transcript: only those lines are commands.
"""

import argparse
import contextlib
import io
import re
import shlex

import pytest

from tacocc_ros.cli import build_parser

FENCE = re.compile(r"^```([\w-]*)\s*$")
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}
COMMAND_WORD = re.compile(r"(^|[\s;&|(])(tacocc|tacocc_core\.cli|tacocc_ros\.cli)(\s|$)")
REDIRECTION = re.compile(r"^\d*(>>?|<)(&\d+)?\S*$")  # 2>&1, >out.log, 2>err.log


def code_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, language, lines) of each fenced code block."""
    blocks, current, language, start = [], None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match and current is None:
            current, language, start = [], match.group(1), number + 1
        elif line.startswith("```") and current is not None:
            blocks.append((start, language, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, shell line with continuations joined) of every line that runs `tacocc`."""
    out = []
    for start, language, lines in code_blocks(text):
        if language not in SHELL_LANGUAGES:
            continue
        transcript = any(line.startswith("$ ") for line in lines)
        joined, first = "", None
        for offset, line in enumerate(lines):
            if transcript and not line.startswith("$ ") and not joined:
                continue
            line = line[2:] if transcript and line.startswith("$ ") else line
            first = start + offset if first is None else first
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            joined += line
            if COMMAND_WORD.search(joined):
                out.append((first, joined))
            joined, first = "", None
    return out


def tacocc_argvs(line: str) -> list[list[str]]:
    """The argument lists given to `tacocc` (or `-m tacocc_core.cli`) on one shell line."""
    tokens = shlex.split(line, comments=True)
    segments, current = [], []
    redirected = False  # the previous token was a redirection whose target this one is
    for token in tokens:
        if redirected:
            redirected = False
        elif token in ("&&", "||", ";", "|", "&"):
            segments.append(current)
            current = []
        elif token in (">", ">>", "<", "2>", "&>"):
            redirected = True
        elif not REDIRECTION.match(token):
            current.append(token)
    segments.append(current)
    argvs = []
    for seg in segments:
        for i, token in enumerate(seg):
            if (
                token == "tacocc"
                or token.endswith("/tacocc")
                or (token in ("tacocc_core.cli", "tacocc_ros.cli") and i and seg[i - 1] == "-m")
            ):
                argvs.append(seg[i + 1 :])
                break
    return argvs


def variants(argv: list[str]) -> tuple[list[list[str]], bool]:
    """(argument lists to parse, elided) from README notation: optional [..] groups, a|b, `...`.

    The lists: everything optional included with the first of each set of alternatives, then once per
    other alternative, and nothing optional.
    """
    full, minimal, choices, depth, elided = [], [], {}, 0, False
    for token in argv:
        opens, closes = token.count("["), token.count("]")
        bare = token.strip("[]")
        if bare == "...":
            elided = elided or depth == 0
        elif bare:
            if "|" in bare and not bare.startswith("-"):
                choices[len(full)] = bare.split("|")
                bare = choices[len(full)][0]
            full.append(bare)
            if depth == 0 and not opens:
                minimal.append(bare)
        depth += opens - closes
    out = [full]
    for index, alternatives in choices.items():
        out += [full[:index] + [alt] + full[index + 1 :] for alt in alternatives[1:]]
    return out + ([minimal] if minimal != full else []), elided


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices.get(name)


def check_options_only(sub: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Problems with the options of an elided command: unknown names, values their type/choices refuse."""
    problems = []
    for i, token in enumerate(argv):
        if not token.startswith("--"):
            continue
        name, _, inline = token.partition("=")
        action = sub._option_string_actions.get(name)
        if action is None:
            problems.append(f"unknown option {name}")
            continue
        if action.nargs == 0:
            continue
        value = inline or (argv[i + 1] if i + 1 < len(argv) else None)
        if value is None or value.startswith("--"):
            problems.append(f"{name} needs a value")
            continue
        try:
            converted = action.type(value) if callable(action.type) else value
        except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
            problems.append(f"{name} {value}: {err}")
            continue
        if action.choices is not None and converted not in action.choices:
            problems.append(f"{name} {value}: not one of {sorted(action.choices)}")
    return problems


def parse_problem(argv: list[str]) -> str | None:
    """Why the real parser refuses `argv` (its error message), or None."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1]
    return None


def problems_of(line: str) -> list[str]:
    parser = build_parser()
    problems = []
    argvs = tacocc_argvs(line)
    if not argvs:
        return [f"no tacocc arguments found in {line!r}"]
    for argv in argvs:
        if not argv or subparser(parser, argv[0]) is None:
            problems.append(f"not a tacocc subcommand: {argv[:1]}")
            continue
        for candidate, elided in [(v, e) for vs, e in [variants(argv)] for v in vs]:
            if elided:
                problems += check_options_only(subparser(parser, argv[0]), candidate[1:])
            elif (reason := parse_problem(candidate)) is not None:
                problems.append(f"{shlex.join(candidate)}: {reason}")
    return problems


def documents(repo_root) -> list:
    """The user-facing Markdown files whose commands must parse (the frozen lab log left out)."""
    docs = [repo_root / "README.md", repo_root / "checkpoints" / "README.md"]
    docs += sorted(p for p in (repo_root / "docs").rglob("*.md") if p.name != "lab-log.md")
    return docs


@pytest.fixture(scope="module")
def doc_commands(repo_root):
    """(file, line number, command line) of every `tacocc` line in the documents' code blocks."""
    return [
        (path.relative_to(repo_root).as_posix(), number, line)
        for path in documents(repo_root)
        for number, line in command_lines(path.read_text())
    ]


def test_the_guides_have_the_walk_through_commands(doc_commands):
    guides = [(f, line) for f, _, line in doc_commands if f.startswith("docs/guides/")]
    subcommands = {argv[0] for _, line in guides for argv in tacocc_argvs(line) if argv}
    assert {"train", "eval", "convert-nuscenes", "generate-scenes", "calibration", "config", "play", "render"} <= (
        subcommands
    )
    assert any("torchrun" in line for _, line in guides)
    assert any(f == "README.md" for f, _, _ in doc_commands)


def test_every_documented_tacocc_command_parses(doc_commands):
    failures = [f"{f}:{number}: {p}" for f, number, line in doc_commands for p in problems_of(line)]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "line",
    [
        "tacocc trian --config tiny --data d --out o",
        "tacocc train --config tiny --data d --out o --epochs 3",
        "tacocc train --config tiny --data d",
        "tacocc eval --checkpoint c.pt --data d --labels nuscenes",
        "tacocc convert-nuscenes --dataroot d --out bags [--storage mcap|zip]",
        "tacocc train ... --resume --no-such-option",
        "OMP_NUM_THREADS=1 tacocc bench --frames many",
        "torchrun --nproc_per_node=2 -m tacocc_core.cli train --config tiny --out o",
    ],
)
def test_broken_commands_are_caught(line):
    assert problems_of(line)


@pytest.mark.parametrize(
    "line",
    [
        "tacocc play bags/x [--rate 2] [--loop] [--topics /LIDAR_TOP /odom]",
        "tacocc convert-nuscenes --dataroot d --out bags [--scenes NAME ...] [--storage mcap|sqlite3]",
        "tacocc train ... --out runs/tiny --resume   # a comment",
        "ros2 run tacocc_ros tacocc config tiny",
        "torchrun --nproc_per_node=8 -m tacocc_core.cli train --config tiny --data d --out o",
    ],
)
def test_readme_notation_is_understood(line):
    assert problems_of(line) == []


def test_continuations_and_transcripts_are_joined():
    text = "\n".join(
        [
            "```bash",
            "tacocc train --config tiny \\",
            "    --data d --out o",
            "echo tacocc_ros",
            "```",
            "```",
            "$ tacocc config my.yaml",
            "tacocc config: error: my.yaml: invalid configuration",
            "```",
            "```python",
            "tacocc = 1",
            "```",
        ]
    )
    found = [(number, " ".join(line.split())) for number, line in command_lines(text)]
    assert found == [(2, "tacocc train --config tiny --data d --out o"), (7, "tacocc config my.yaml")]


def inline_commands(text: str) -> list[str]:
    """The inline `tacocc ...` spans of a document that are whole commands (tables of measurements, prose)."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # fenced blocks: checked above
    spans = re.findall(r"`([^`\n]+)`", text)
    placeholder = re.compile(r"^\[?[A-Z][A-Z0-9_]*(\.\w+)?\]?$")  # PRESET, DIR, FILE.json: a synopsis
    return [
        span
        for span in spans
        if re.search(r"(^|\s)tacocc [a-z]", span)
        and " --" in span
        and "(" not in span
        and not any(placeholder.match(token) for token in span.split())
    ]


def test_the_inline_commands_parse(repo_root):
    commands = [
        (path.relative_to(repo_root).as_posix(), line)
        for path in documents(repo_root)
        if path.name != "CONFIGURATION.md"  # generated; its spans name options, not commands
        for line in inline_commands(path.read_text())
    ]
    assert len(commands) >= 3
    failures = [f"{f}: {line}: {p}" for f, line in commands for p in problems_of(line)]
    assert not failures, "\n".join(failures)
