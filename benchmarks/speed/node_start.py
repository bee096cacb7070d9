"""How long the occupancy node takes from its command to ready, and how much memory its processes hold then.

Starts `python -m tacocc_ros.node.occupancy_node` through `OccupancyNodeProcess` (demo preset,
`checkpoints/demo.pt`, the fixture frame's calibration) `--starts` times in a row. For each start it prints
the seconds until the node is ready (its 'ready:' line, its subscriptions and its reload service in the ROS
graph) and the resident memory of the node's ROS process and of its network process at that moment.

    python -m benchmarks.speed.node_start --starts 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from benchmarks.fixtures import REPO_ROOT  # noqa: E402
from tacocc_ros.tooling.drive_source import default_fixture, frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, child_pids, driver_node_params, process_rss_mb  # noqa: E402
from tacocc_ros.tooling.node_process import OccupancyNodeProcess  # noqa: E402


def network_process(node_pid: int) -> int | None:
    """The node's network process: its largest child (the others are multiprocessing's resource trackers)."""
    children = child_pids(node_pid)
    return max(children, key=lambda pid: process_rss_mb(pid) or 0.0) if children else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--fixtures", type=Path, default=None, help="folder holding nuscenes_frame/")
    args = parser.parse_args()
    fixture = args.fixtures / "nuscenes_frame" if args.fixtures else default_fixture()
    folder = Path(tempfile.mkdtemp(prefix="tacocc-node-start-"))
    frame = frame_from_fixture(fixture)
    params = driver_node_params(
        frame.write_calibration(folder / "calibration.yaml"), str(REPO_ROOT / "checkpoints" / "demo.pt"), DriveOptions()
    )
    seconds = []
    print("start  ready_s  ros_process_mb  network_process_mb")
    for i in range(args.starts):
        begin = time.monotonic()
        with OccupancyNodeProcess(params, folder / f"node{i}.log") as node:
            ready = time.monotonic() - begin
            assert node.pid is not None
            child = network_process(node.pid)
            node_mb = process_rss_mb(node.pid) or float("nan")
            child_mb = (process_rss_mb(child) if child is not None else None) or float("nan")
            print(f"{i:5d}  {ready:7.2f}  {node_mb:14.0f}  {child_mb:18.0f}", flush=True)
        seconds.append(ready)
    print(f"median ready {statistics.median(seconds):.2f} s over {len(seconds)} starts")


if __name__ == "__main__":
    main()
