"""The DDS domain of a node a test builds in its own process.

Node processes (`OccupancyNodeProcess`, the training node) run on the worker's domain (test/conftest.py), and
their tests find them in the ROS graph by name. A second node of the same name there, built in the test
process and not yet destroyed (rclpy frees a node's participant when nothing uses its handle any more), makes
such a lookup read the wrong node: the process's node stays invisible for as long as the other lives.
So a test that builds an OccupancyNode in its own process gives it a domain of its own.
"""

from __future__ import annotations

import os

# Offsets from the worker's domain, one per test that builds a node in its process. Worker N has domain base + N:
# no offset may be 0 or 1 (a worker's own or the next worker's domain), nor differ by 1 from another (worker
# N + offset = worker N + 1 + other offset).
OFFSETS = {
    "bad_input": 50,
    "inference": 60,
    "qos": 63,
    "backend_torch": 70,
    "backend_onnxruntime": 75,
    "bag_frames": 80,
    "shared_params": 84,
    "startup_error": 88,
}


def in_process_domain(test: str) -> int:
    """The domain id for `test`'s in-process node: the worker's domain + its offset, modulo 101."""
    return (int(os.environ.get("ROS_DOMAIN_ID", "0")) + OFFSETS[test]) % 101
