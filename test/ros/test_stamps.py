"""tacocc_ros.messages.stamps: builtin_interfaces/Time <-> integer nanoseconds."""

import pytest
from builtin_interfaces.msg import Time

from tacocc_ros.messages.stamps import make_header, ns_to_stamp, stamp_to_ns


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_000_000_000, 1_532_402_927_647_951_123])
def test_round_trip(ns):
    stamp = ns_to_stamp(ns)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert stamp_to_ns(stamp) == ns


def test_known_value_and_header():
    assert stamp_to_ns(Time(sec=1532402927, nanosec=647951000)) == 1_532_402_927_647_951_000
    header = make_header(2_500_000_000, "LIDAR_TOP")
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (2, 500_000_000, "LIDAR_TOP")


def test_negative_stamp_is_rejected():
    with pytest.raises(ValueError, match="cannot be negative, got -5 ns"):
        ns_to_stamp(-5)
