"""tacocc_ros.tooling.drive_report: the figures of a load-driver run from constructed records."""

import json

import numpy as np
import pytest

from tacocc_ros.tooling import drive_report


def test_percentiles_skip_unknown_latencies():
    values = list(range(1, 101)) + [None]
    got = drive_report.percentiles(values)
    assert got == {"p50": pytest.approx(50.5), "p99": pytest.approx(np.percentile(range(1, 101), 99)), "max": 100.0}
    assert drive_report.percentiles([]) == {"p50": None, "p99": None, "max": None}


def test_longest_gap_counts_the_window_edges():
    assert drive_report.longest_gap([1.0, 1.1, 3.0, 3.2], 0.0, 4.0) == {"s": pytest.approx(1.9), "at": 1.1}
    assert drive_report.longest_gap([0.5, 1.0], 0.0, 10.0) == {"s": pytest.approx(9.0), "at": 1.0}  # outputs stopped
    assert drive_report.longest_gap([], 2.0, 5.0) == {"s": 3.0, "at": 2.0}
    assert drive_report.longest_gap([-1.0, 2.5, 99.0], 2.0, 3.0)["s"] == pytest.approx(0.5)  # outside: ignored


def test_rss_growth_is_measured_after_the_settle_time():
    rss = [(t, 1000.0 + min(t, 120) * 0.5 + max(0, t - 120) * 0.01) for t in range(0, 1800, 1)]
    got = drive_report.rss_summary(rss)
    assert got["start_mb"] == 1000.0 and got["settled_mb"] == pytest.approx(1060.0 + 0.01 * 29.5)
    assert got["growth_after_settle_mb"] == pytest.approx(0.01 * (1769 - 149.5))  # medians of the two minutes
    short = drive_report.rss_summary([(0, 900.0), (60, 950.0)])
    assert short["settled_mb"] is None and short["growth_after_settle_mb"] is None and short["max_mb"] == 950.0


def test_a_block_mapped_for_one_sample_is_not_growth():
    rss = [(t, 1300.0 + (23.0 if t % 50 == 0 else 0.0)) for t in range(0, 1800)]  # a 23 MB cloud now and then
    got = drive_report.rss_summary(rss)
    assert got["growth_after_settle_mb"] == 0.0 and got["max_after_settle_mb"] == 1323.0


def test_steps_that_stay_are_growth():
    rss = [(t, 1200.0 + 23.0 * min(5, max(0, t - 120) // 100)) for t in range(0, 1800)]
    assert drive_report.rss_summary(rss)["growth_after_settle_mb"] == 115.0


def test_counters_read_integer_diagnostics_values():
    values = {"dropped timeout": "3", "dropped timeout:CAM_BACK": "2", "failed image CAM_FRONT": "1", "published": "9"}
    assert drive_report.counters(values, "dropped ") == {"timeout": 3, "timeout:CAM_BACK": 2}
    assert drive_report.counters(values, "failed ") == {"image CAM_FRONT": 1}


def test_targets():
    summary = {"latency_end_to_end_ms": {"p99": 150.0}, "longest_gap_ms": 350.0, "output_rate_hz": 7.0}
    got = drive_report.targets(summary, {"p50_ms": 120.0, "p99_ms": 125.0}, lidar_hz=20.0)
    assert got["end_to_end_p99_ok"] and got["longest_gap_ok"]
    assert got["output_rate_needed_hz"] == pytest.approx(0.9 * 1000 / 120) and not got["output_rate_ok"]
    assert drive_report.targets(summary, None, 20.0) is None


def test_json_and_png_are_written_whole(tmp_path):
    report = {
        "rss_mb": [(t, 1000.0 + t / 100) for t in range(0, 300, 5)],
        "faults_injected": [(10.0, "empty_cloud"), (13.0, "zero_k")],
        "duration_s": 300.0,
    }
    report["rss"] = drive_report.rss_summary(report["rss_mb"])
    path = drive_report.write_json(tmp_path / "soak.json", report)
    assert json.loads(path.read_text())["duration_s"] == 300.0
    png = drive_report.plot_rss(report, tmp_path / "soak.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["soak.json", "soak.png"]  # no temporary files left
