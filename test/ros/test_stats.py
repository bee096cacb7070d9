"""tacocc_ros.node.stats: rates over a window, latency percentiles, counters since the last report."""

import threading

import numpy as np
import pytest

from tacocc_ros.node.stats import OTHER, NodeStats

S = 1_000_000_000


def test_rates_count_the_trailing_window():
    stats = NodeStats(rate_window_ns=2 * S)
    for i in range(41):  # 20 Hz for 2 s
        stats.on_input("/LIDAR_TOP", 10 * S + i * S // 20)
    for i in range(13):
        stats.on_input("/CAM_FRONT", 10 * S + i * S // 6)
    snap = stats.snapshot(12 * S)
    assert snap["rates_hz"]["/LIDAR_TOP"] == pytest.approx(20.0)
    assert snap["rates_hz"]["/CAM_FRONT"] == pytest.approx(6.0)
    assert stats.snapshot(20 * S)["rates_hz"] == {"/LIDAR_TOP": 0.0, "/CAM_FRONT": 0.0}


def test_clock_going_back_restarts_the_rate():
    stats = NodeStats(rate_window_ns=S)
    for i in range(10):
        stats.on_input("/LIDAR_TOP", 100 * S + i * S // 10)
    stats.on_input("/LIDAR_TOP", 5 * S)
    assert stats.snapshot(5 * S)["rates_hz"]["/LIDAR_TOP"] == pytest.approx(1.0)


def test_latency_percentiles_over_the_last_frames():
    stats = NodeStats(latency_window=100)
    assert stats.snapshot(0)["latency_ms"] == {"p50": None, "p99": None, "max": None}
    for i in range(300):  # only the last 100 (latencies 200..299 ms) count
        stats.on_published(lidar_stamp_ns=i * S, publish_ns=i * S + i * 1_000_000)
    snap = stats.snapshot(0)
    assert snap["published"] == 300
    assert snap["latency_ms"]["p50"] == pytest.approx(np.percentile(np.arange(200, 300), 50))
    assert snap["latency_ms"]["p99"] == pytest.approx(np.percentile(np.arange(200, 300), 99))
    assert snap["latency_ms"]["max"] == pytest.approx(299)


def test_drops_failures_and_k_histogram():
    stats = NodeStats()
    stats.on_dropped("incomplete:CAM_BACK")
    stats.on_dropped("replaced", 2)
    stats.on_failed("decode:/CAM_FRONT")
    stats.on_k(np.array([1, 3, 3, 2, 3]))
    stats.on_k(np.array([1]))
    first = stats.snapshot(0)
    assert first["dropped"] == {"incomplete:CAM_BACK": 1, "replaced": 2}
    assert first["failed"] == {"decode:/CAM_FRONT": 1}
    assert first["k_histogram"] == {1: 2, 2: 1, 3: 3}
    assert (first["new_dropped"], first["new_failed"]) == (3, 1)
    assert (stats.snapshot(0)["new_dropped"], stats.snapshot(0)["new_failed"]) == (0, 0)
    stats.on_failed("inference")
    assert stats.snapshot(0)["new_failed"] == 1


def test_counts_from_several_threads_add_up():
    stats = NodeStats()

    def work():
        for _ in range(2000):
            stats.on_dropped("x")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.snapshot(0)["dropped"] == {"x": 8000}


def test_bad_windows_are_rejected():
    with pytest.raises(ValueError, match="windows must be positive"):
        NodeStats(rate_window_ns=0)


def test_the_key_set_is_bounded_whatever_the_reasons():
    stats = NodeStats(max_keys=4)
    for i in range(1000):  # a caller that builds reasons from data (a gap value, a stamp)
        stats.on_dropped(f"gap {i}")
        stats.on_failed(f"stamp {i}")
        stats.on_event(f"reset {i}")
    snap = stats.snapshot(0)
    for counter in ("dropped", "failed", "events"):
        assert len(snap[counter]) == 5 and snap[counter][OTHER] == 996
        assert sum(snap[counter].values()) == 1000
    stats.on_dropped("gap 0")  # a reason it already holds keeps its own key
    assert stats.snapshot(0)["dropped"]["gap 0"] == 2
