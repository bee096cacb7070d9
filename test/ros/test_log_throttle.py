"""tacocc_ros.node.log_throttle: one line per reason per period with a count, a bounded set of reasons."""

import threading

import pytest

from tacocc_ros.node.log_throttle import OTHER, LogThrottle

S = 1_000_000_000


def test_a_flood_gives_one_line_per_reason_per_period_with_the_count():
    throttle = LogThrottle(period_ns=5 * S)
    lines = []
    for i in range(20 * 60):  # 20 bad sweeps a second for a minute
        line = throttle.report("bad PointCloud2", f"dropped sweep {i}: no field x", i * S // 20)
        if line is not None:
            lines.append(line)
    assert len(lines) == 12  # one per 5 s period
    assert lines[0] == "dropped sweep 0: no field x"
    # Each later line carries the count of the period before it and the newest message.
    assert lines[1].startswith("bad PointCloud2: 99 more in the last 5.0 s (latest: dropped sweep 99: no field x)")
    assert lines[1].endswith("now: dropped sweep 100: no field x")


def test_reasons_are_throttled_independently():
    throttle = LogThrottle(period_ns=5 * S)
    assert throttle.report("a", "first a", 0) == "first a"
    assert throttle.report("b", "first b", 1) == "first b"
    assert throttle.report("a", "second a", 2) is None
    assert throttle.report("b", "second b", 3) is None


def test_flush_reports_a_reason_that_went_quiet_and_forgets_it():
    throttle = LogThrottle(period_ns=5 * S)
    throttle.report("bad Odometry", "odom 1", 0)
    throttle.report("bad Odometry", "odom 2", 1 * S)
    throttle.report("bad Odometry", "odom 3", 2 * S)
    throttle.report("quiet", "once", 0)
    assert throttle.flush(4 * S) == []  # the period is not over
    assert throttle.flush(5 * S) == ["bad Odometry: 2 more in the last 5.0 s (latest: odom 3)"]
    assert throttle.reasons == ()  # both forgotten: one with nothing to add, one reported
    assert throttle.report("bad Odometry", "odom 4", 6 * S) == "odom 4"  # a new episode starts plainly


def test_the_set_of_reasons_is_bounded():
    throttle = LogThrottle(period_ns=5 * S, max_reasons=3)
    lines = [throttle.report(f"gap of {i}.{i:03d} s", f"message {i}", 0) for i in range(100)]
    assert len(throttle.reasons) == 4 and OTHER in throttle.reasons
    assert lines[:3] == ["message 0", "message 1", "message 2"]
    assert lines[3] == "gap of 3.003 s: message 3"  # the first overflowing reason is logged under `other`
    assert lines[4:] == [None] * 96
    assert throttle.flush(5 * S) == ["other: 96 more in the last 5.0 s (latest: gap of 99.099 s: message 99)"]


def test_counts_from_several_threads_add_up():
    throttle = LogThrottle(period_ns=100 * S)
    returned = []

    def flood():
        for _ in range(1000):
            line = throttle.report("r", "m", 0)
            if line is not None:
                returned.append(line)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert returned == ["m"]
    assert throttle.flush(100 * S) == ["r: 3999 more in the last 100.0 s (latest: m)"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="period_ns and max_reasons must be positive"):
        LogThrottle(period_ns=0)
