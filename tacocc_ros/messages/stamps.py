"""ROS time stamps <-> integer nanoseconds (the only time representation inside the code)."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> builtin_interfaces/Time."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ValueError(f"a ROS stamp cannot be negative, got {stamp_ns} ns")
    return Time(sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)


def make_header(stamp_ns: int, frame_id: str) -> Header:
    """A std_msgs/Header with the stamp in nanoseconds and the frame id."""
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=str(frame_id))
