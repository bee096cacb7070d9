"""How many CameraInfo messages the occupancy node receives from a publisher of each QoS profile.

A real OccupancyNode (demo preset, the fixture frame's calibration) spins in this process; a second rclpy
participant publishes the fixture's CameraInfo on `/CAM_FRONT/camera_info` as fast as it can for
`--seconds`, once with ROS 2's default profile, once with sensor-data QoS, once latched. Prints, per
profile, the messages published and the messages the node's callback got, and the subscription
profile the node ended with.

    python -m benchmarks.speed.bench_node_qos --seconds 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402

from tacocc_ros.node.occupancy_node import OccupancyNode  # noqa: E402
from tacocc_ros.tooling.drive_source import default_fixture, frame_from_fixture  # noqa: E402
from tacocc_ros.tooling.load_driver import DriveOptions, FrameMessages, driver_node_params  # noqa: E402

PROFILES = {
    "default (reliable volatile)": QoSProfile(depth=10),
    "sensor data (best effort volatile)": qos_profile_sensor_data,
    "latched (reliable transient local)": QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    ),
}
TOPIC = "/CAM_FRONT/camera_info"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=3.0, help="wait before counting (discovery, adaptation)")
    args = parser.parse_args()
    frame = frame_from_fixture(default_fixture())
    calibration = frame.write_calibration(Path(tempfile.mkdtemp(prefix="tacocc-qos-")) / "calibration.yaml")
    params = driver_node_params(calibration, "checkpoints/demo.pt", DriveOptions(raw_camera=None))
    params.pop("sensor_reliability")
    params["inference_threads"] = 1
    domain = os.getpid() % 100 + 1
    node_context, talker_context = Context(), Context()
    rclpy.init(context=node_context, domain_id=domain)
    rclpy.init(context=talker_context, domain_id=domain)
    node = OccupancyNode(context=node_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    counts = {"n": 0}
    on_input = node.stats.on_input

    def count(topic: str, now_ns: int) -> None:
        counts["n"] += topic == TOPIC
        on_input(topic, now_ns)

    node.stats.on_input = count
    executor = SingleThreadedExecutor(context=node_context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    talker = rclpy.create_node("qos_driver", context=talker_context)
    info = FrameMessages(frame, DriveOptions(raw_camera=None)).infos["CAM_FRONT"]
    try:
        for name, qos in PROFILES.items():
            publisher = talker.create_publisher(CameraInfo, TOPIC, qos)
            end = time.monotonic() + args.settle
            while time.monotonic() < end:  # discovery and the node's re-adaptation, not counted
                publisher.publish(info)
                time.sleep(0.01)
            time.sleep(0.5)
            counts["n"], sent = 0, 0
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                publisher.publish(info)
                sent += 1
            time.sleep(0.5)
            profile = node.node_inputs.profiles()[TOPIC]
            print(f"{name:<36} published {sent:7d}  received {counts['n']:7d}  node subscribes {profile}", flush=True)
            talker.destroy_publisher(publisher)
            time.sleep(1.5)
    finally:
        executor.shutdown()
        node.close()
        node.destroy_node()
        talker.destroy_node()
        rclpy.try_shutdown(context=node_context)
        rclpy.try_shutdown(context=talker_context)


if __name__ == "__main__":
    main()
