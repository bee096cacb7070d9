"""What a load-driver run measured, as one JSON-ready dict, its targets, and the RSS plot.

Plain numpy on what the driver recorded (times in seconds since the driver started publishing), so it is
tested with constructed records:

- outputs: one (receive time, end-to-end latency ms or None) per grid received;
- diagnostics: the node's /diagnostics values (key -> string) at each receipt, with their times;
- rss: (time, MB) samples of the node process, cpu: (time, CPU seconds) samples of it;
- faults: (time, fault name) of each fault injected.

Targets (`targets`), from the network's own timing (`tacocc bench`, same machine, same run):
end-to-end p99 <= 1.3 x network p99; longest gap between consecutive outputs <= 3 x network p50;
output rate >= 0.9 x min(LiDAR rate, 1000 / network p50 ms).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tacocc_core.train.eval_report import write_text_atomic

RSS_SETTLE_S = 120.0  # RSS growth is measured after the first two minutes (warm-up: allocator, torch caches)


def percentiles(values: Sequence[float | None] | np.ndarray) -> dict[str, float | None]:
    """{"p50", "p99", "max"} of `values` (ms), None each when empty."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if not v.size:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(v, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(v.max())}


def longest_gap(times: list[float] | np.ndarray, start: float, end: float) -> dict[str, float]:
    """The longest interval (s) without an output in [start, end], counting the edges: {"s", "at"}."""
    t = np.sort(np.asarray([x for x in times if start <= x <= end], dtype=np.float64))
    edges = np.concatenate([[start], t, [end]])
    gaps = np.diff(edges)
    i = int(np.argmax(gaps))
    return {"s": float(gaps[i]), "at": float(edges[i])}


def rss_summary(rss: list[tuple[float, float]], settle_s: float = RSS_SETTLE_S, window_s: float = 60.0) -> dict:
    """RSS (MB) at start, after `settle_s`, at the end, its max, and the growth from `settle_s` to the end.

    "After settle" and "end" are medians over `window_s` (the minute after `settle_s`, the last minute), so a
    block mapped for one message at the moment of a sample (a 23 MB cloud) does not count as growth;
    `max_after_settle_mb` keeps the highest sample.
    """
    empty = dict.fromkeys(
        ("start_mb", "settled_mb", "end_mb", "max_mb", "max_after_settle_mb", "growth_after_settle_mb")
    )
    if not rss:
        return empty
    t = np.asarray([s[0] for s in rss])
    mb = np.asarray([s[1] for s in rss])
    end_mb = float(np.median(mb[t >= t[-1] - window_s]))
    out = {
        **empty,
        "start_mb": float(mb[0]),
        "end_mb": end_mb,
        "max_mb": float(mb.max()),
    }
    if t[-1] >= settle_s + window_s:
        settled = float(np.median(mb[(t >= settle_s) & (t < settle_s + window_s)]))
        out["settled_mb"] = settled
        out["max_after_settle_mb"] = float(mb[t >= settle_s].max())
        out["growth_after_settle_mb"] = end_mb - settled
    return out


def counters(values: dict[str, str], prefix: str) -> dict[str, int]:
    """{reason: count} of the /diagnostics keys `<prefix><reason>` holding integers."""
    return {k[len(prefix) :]: int(v) for k, v in values.items() if k.startswith(prefix) and v.isdigit()}


def targets(summary: dict, network: dict | None, lidar_hz: float) -> dict | None:
    """The three targets of the module docstring against `network` ({"p50_ms", "p99_ms"}); None without it."""
    if network is None:
        return None
    p50, p99 = float(network["p50_ms"]), float(network["p99_ms"])
    e2e_p99 = summary["latency_end_to_end_ms"]["p99"]
    rate_needed = 0.9 * min(lidar_hz, 1000.0 / p50)
    return {
        "network_p50_ms": p50,
        "network_p99_ms": p99,
        "end_to_end_p99_limit_ms": 1.3 * p99,
        "end_to_end_p99_ok": e2e_p99 is not None and e2e_p99 <= 1.3 * p99,
        "longest_gap_limit_ms": 3 * p50,
        "longest_gap_ok": summary["longest_gap_ms"] <= 3 * p50,
        "output_rate_needed_hz": rate_needed,
        "output_rate_ok": summary["output_rate_hz"] >= rate_needed,
    }


def write_json(path: str | os.PathLike[str], data: dict) -> Path:
    """Write `data` as JSON through the project's atomic writer: never a half-written report."""
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")
    return Path(path)


def plot_rss(report: dict, path: str | os.PathLike[str]) -> Path:
    """PNG of the node's RSS over time (faults marked), written atomically beside the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    rss = report["rss_mb"]
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    if rss:
        ax.plot([s[0] / 60 for s in rss], [s[1] for s in rss], lw=1.2, label="node RSS")
    for i, (t, _name) in enumerate(report["faults_injected"]):
        ax.axvline(t / 60, color="tab:red", alpha=0.15, lw=0.8, label="fault" if i == 0 else None)
    ax.axvline(RSS_SETTLE_S / 60, color="k", ls="--", lw=0.8, label="growth measured from here")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    rss_info = report["rss"]
    growth = rss_info["growth_after_settle_mb"]
    ax.set_title(
        f"occupancy_node RSS, {report['duration_s'] / 60:.0f} min at sensor rates"
        + (f": +{growth:.1f} MB after 2 min" if growth is not None else "")
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path
