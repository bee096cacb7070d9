"""Per-frame overhead of the running occupancy node outside the network, through the node's own methods.

A real `OccupancyNode` (nuScenes preset, random weights, CPU) is built in-process; then, per frame:
- `_build_frame`: decode the six real 1600x900 JPEGs of the fixture frame to 256x704 on the node's
  decoder threads, apply the transforms to the CameraInfo intrinsics, look up the pose, merge the real
  34,688-point sweep with `lidar.sweeps` (9) previous sweeps moved by odometry -> the Frame;
- PointCloud2 -> points, as the LiDAR callback does;
- `_publish`: MarkerArray + occupancy PointCloud2 of a 200x200x16 grid with ~30k occupied voxels (the
  real Occ3D fixture grid, capped to --voxels), published to a matched subscriber (serialisation included).
The network itself is not run. Target of the total (docs/design/performance.md): <= 30 ms per frame on a
2-core CPU. Below the total,
the parts: decoding on the node's threads and one by one, the sweep merge, the marker and cloud builds (marker
Point cache warm as on consecutive frames, and cold as on the first), and the serialisation of both outputs.

    python -m benchmarks.speed.bench_node [--repeats 20] [--voxels 30000] [--decode-threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, PointCloud2  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from benchmarks.fixtures import fixtures_root  # noqa: E402
from tacocc_core.labels import SURROUNDOCC_GRID, occ3d_to_dense  # noqa: E402
from tacocc_core.timing import median_wall_cpu_ms  # noqa: E402
from tacocc_ros.messages.images import decode_cameras  # noqa: E402
from tacocc_ros.messages.pointcloud import array_to_cloud, cloud_to_points  # noqa: E402
from tacocc_ros.messages.stamps import make_header  # noqa: E402
from tacocc_ros.node.calibration import CameraCalibration, RigCalibration, save_calibration  # noqa: E402
from tacocc_ros.node.frame_assembly import LidarInput  # noqa: E402
from tacocc_ros.node.occupancy_node import OccupancyNode  # noqa: E402
from tacocc_ros.node.outputs import MarkerBuilder, build_cloud, occupied_voxels  # noqa: E402
from tacocc_ros.node.sync import SyncedSet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=fixtures_root(), help="default: $TACOCC_FIXTURES")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--voxels", type=int, default=30_000, help="occupied voxels in the output grid")
    parser.add_argument("--decode-threads", type=int, default=2, help="the node's decode_threads parameter")
    args = parser.parse_args()

    folder = args.fixtures / "nuscenes_frame"
    calib = json.loads((folder / "calib.json").read_text())
    lidar2ego = np.asarray(calib["lidar"]["lidar2ego"])
    ego2global = np.asarray(calib["ego2global"])
    cameras = {
        name: CameraCalibration(np.linalg.inv(lidar2ego) @ np.asarray(c["cam2ego"]), np.asarray(c["cam2img"]), name)
        for name, c in calib["cameras"].items()
    }
    tmp = Path(tempfile.mkdtemp())
    save_calibration(tmp / "calibration.yaml", RigCalibration("LIDAR_TOP", cameras, lidar2ego))

    raw = np.fromfile(folder / calib["lidar"]["file"], dtype=np.float32).reshape(-1, 5)
    sweep = np.zeros(len(raw), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])
    for i, name in enumerate(sweep.dtype.names):
        sweep[name] = raw[:, i]
    stamp = round(calib["timestamp_s"] * 1e9)
    cloud = array_to_cloud(sweep, make_header(stamp, "LIDAR_TOP"))
    images = {
        name: (
            stamp,
            CompressedImage(header=make_header(stamp, name), format="jpeg", data=(folder / c["file"]).read_bytes()),
        )
        for name, c in calib["cameras"].items()
    }
    occ3d = np.load(args.fixtures / "occ3d" / "labels.npz")
    labels = occ3d_to_dense(occ3d["semantics"], None)
    flat, _ = occupied_voxels(labels, SURROUNDOCC_GRID, args.voxels)
    capped = np.zeros(labels.size, np.uint8)
    capped[flat] = labels.reshape(-1)[flat]
    labels = capped.reshape(labels.shape)

    rclpy.init(
        args=["--ros-args", "-p", "model_config:=nuscenes_r50_256x704", "-p", "device:=cpu",
              "-p", f"calibration:={tmp / 'calibration.yaml'}", "-p", "max_cubes:=0",
              "-p", f"decode_threads:={args.decode_threads}"]
    )  # fmt: skip
    try:
        node = OccupancyNode()
        viewer = rclpy.create_node("bench_viewer")
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        viewer.create_subscription(MarkerArray, "/occupancy/markers", lambda m: None, qos)
        viewer.create_subscription(PointCloud2, "/occupancy/cloud", lambda m: None, qos)
        executor = SingleThreadedExecutor()
        executor.add_node(viewer)
        deadline = time.monotonic() + 20
        while not (node.pub_markers.get_subscription_count() and node.pub_cloud.get_subscription_count()):
            if time.monotonic() > deadline:
                raise SystemExit("the viewer never matched the node's publishers")
            executor.spin_once(timeout_sec=0.05)
        points = cloud_to_points(cloud)
        sweeps = node.config.lidar.sweeps
        for i in range(sweeps, -1, -1):  # the same sweep as the previous ones, 50 ms apart, ego at rest
            node.poses.add(stamp - i * 50_000_000, ego2global)
            if i:
                node.sweeps.add(stamp - i * 50_000_000, points)
        lidar = LidarInput(stamp, "LIDAR_TOP", points, time.monotonic_ns())
        synced = SyncedSet(stamp, lidar, images)
        frame = node._build_frame(synced)
        rows = {
            f"PointCloud2 -> points ({len(points)})": median_wall_cpu_ms(lambda: cloud_to_points(cloud), args.repeats),
            f"build Frame: 6 JPEGs -> 256x704, {sweeps + 1} sweeps -> {len(frame.points)} points": median_wall_cpu_ms(
                lambda: node._build_frame(synced), args.repeats
            ),
            f"publish markers + cloud, {len(flat)} voxels": median_wall_cpu_ms(
                lambda: node._publish(labels, lidar), args.repeats
            ),
        }
        total = (sum(w for w, _ in rows.values()), sum(c for _, c in rows.values()))
        size = tuple(node.config.cameras.image_size)
        msgs = [m for _, m in images.values()]
        pose = node.poses.lookup(stamp) @ lidar2ego
        grid = node.grid
        markers = node.markers.build(labels, stamp, "LIDAR_TOP")
        occupancy = build_cloud(labels, grid, stamp, "LIDAR_TOP")
        few = max(3, args.repeats // 4)
        parts = {
            f"  decode 6 JPEGs on the node's {args.decode_threads} decoder threads": median_wall_cpu_ms(
                lambda: decode_cameras(msgs, size, executor=node.frames.pool), args.repeats
            ),
            "  decode 6 JPEGs one by one": median_wall_cpu_ms(lambda: decode_cameras(msgs, size), args.repeats),
            "  merge previous sweeps (accumulate)": median_wall_cpu_ms(
                lambda: node.sweeps.accumulate(stamp, points, lambda s: pose), args.repeats
            ),
            "  build the MarkerArray (Point cache warm)": median_wall_cpu_ms(
                lambda: node.markers.build(labels, stamp, "LIDAR_TOP"), args.repeats
            ),
            "  build the MarkerArray (cold cache: first frame)": median_wall_cpu_ms(
                lambda: MarkerBuilder(grid).build(labels, stamp, "LIDAR_TOP"), few
            ),
            "  build the occupancy PointCloud2": median_wall_cpu_ms(
                lambda: build_cloud(labels, grid, stamp, "LIDAR_TOP"), args.repeats
            ),
            "  serialise the MarkerArray (inside publish)": median_wall_cpu_ms(
                lambda: serialize_message(markers), args.repeats
            ),
            "  serialise the occupancy PointCloud2 (inside publish)": median_wall_cpu_ms(
                lambda: serialize_message(occupancy), args.repeats
            ),
        }
        width = max(map(len, [*rows, *parts])) + 2
        print(f"{'':<{width}}{'wall ms':>9}{'cpu ms':>9}")
        for name, (wall, cpu) in [*rows.items(), ("total (target <= 30 ms)", total)]:
            print(f"{name:<{width}}{wall:9.2f}{cpu:9.2f}")
        print("parts of the above:")
        for name, (wall, cpu) in parts.items():
            print(f"{name:<{width}}{wall:9.2f}{cpu:9.2f}")
        node.close()
        viewer.destroy_node()
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
