"""The occupancy node spun by rclpy's MultiThreadedExecutor (2 threads), for `bench_executor.py` only.

The node itself always uses one SingleThreadedExecutor (tacocc_ros/node/spin.py says why); this module
is the benchmark's way of running the alternative:

    python -m benchmarks.speed.executor_node --ros-args --params-file params.yaml
"""

from __future__ import annotations

import sys

from rclpy.executors import MultiThreadedExecutor

from tacocc_ros.node.occupancy_node import OccupancyNode
from tacocc_ros.node.spin import run_until_signal


def main() -> int:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print("usage: python -m benchmarks.speed.executor_node --ros-args --params-file PARAMS\n")
        print(__doc__)
        return 0
    return run_until_signal(OccupancyNode, "occupancy_node", None, lambda: MultiThreadedExecutor(num_threads=2))


if __name__ == "__main__":
    sys.exit(main())
