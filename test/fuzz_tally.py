"""The tally of the generated-input tests: per boundary, cases tried, outcomes by kind, crashes, slowest case.

Each test runs its target through `check(boundary, what, fn, expected)`: the call either returns (kind
"ok"), raises one of the boundary's own errors (kind = that error's class name) or raises anything else
(kind "crash <class>", counted as a crash and re-raised so that hypothesis shrinks it and the test fails).
`write_report` (conftest's `--fuzz-report`) dumps the tally as JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

FUZZ_EXAMPLES = 10_000  # generated cases of one boundary's test under the "fuzz" profile
T = TypeVar("T")


@dataclass
class BoundaryTally:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    crashes: int = 0
    slowest_s: float = 0.0
    slowest_case: str = ""
    total_s: float = 0.0


TALLY: dict[str, BoundaryTally] = {}


class Outcome:
    """What `check` saw: `value` when the call returned, `error` when it raised an expected error."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    @property
    def message(self) -> str:
        return str(self.error) if self.error is not None else ""


def check(
    boundary: str, what: str, fn: Callable[[], T], expected: tuple[type[BaseException], ...] | type[BaseException]
) -> Outcome:
    """Run `fn()` once as a case of `boundary`; `what` names the case (the mutation) in the tally."""
    tally = TALLY.setdefault(boundary, BoundaryTally())
    start = time.perf_counter()
    kind = "ok"
    try:
        return Outcome(value=fn())
    except expected as err:
        kind = type(err).__name__
        return Outcome(error=err)
    except Exception as err:
        kind = f"crash {type(err).__name__}"
        tally.crashes += 1
        raise
    finally:
        elapsed = time.perf_counter() - start
        tally.cases += 1
        tally.total_s += elapsed
        tally.outcomes[f"{what}: {kind}"] += 1
        if elapsed > tally.slowest_s:
            tally.slowest_s, tally.slowest_case = elapsed, f"{what} ({kind})"


def write_report(path: Path, max_examples: int) -> None:
    """The tally as JSON: {boundary: {cases, errors_by_kind, ok, crashes, slowest_ms, slowest_case, mean_ms}}."""
    out = {"max_examples_per_test": max_examples, "boundaries": {}}
    for name, tally in sorted(TALLY.items()):
        out["boundaries"][name] = {
            "cases": tally.cases,
            "crashes": tally.crashes,
            "outcomes": dict(sorted(tally.outcomes.items())),
            "slowest_ms": round(tally.slowest_s * 1000, 2),
            "slowest_case": tally.slowest_case,
            "mean_ms": round(tally.total_s * 1000 / max(tally.cases, 1), 3),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, path)
