"""Per-frame overhead of the occupancy node outside the network, on real inputs.

Times (median over --repeats runs, milliseconds):
- decoding the six real nuScenes 1600x900 JPEGs of the fixture frame to the network size (256x704),
  on a pool of --threads threads (and one by one, for comparison);
- converting the real 34,688-point LIDAR_TOP sweep from PointCloud2 to (N, 4) float32;
- building the MarkerArray and the occupancy PointCloud2 of a 200x200x16 grid with ~30k occupied
  voxels (the real Occ3D fixture grid, capped to --voxels), with the Point cache warm (consecutive
  frames) and cold (first frame);
- serialising both output messages, which is what `publish` costs on top.

Run from the repository root (this checkout, not an install):
`PYTHONPATH=. python benchmarks/bench_node_io.py`. The target for decode + cloud + build (warm) is
<= 30 ms on a 2-core CPU (docs/design/performance.md).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage

from tacocc_core.labels import SURROUNDOCC_GRID, occ3d_to_dense
from tacocc_core.timing import median_wall_cpu_ms
from tacocc_ros.messages.images import decode_cameras
from tacocc_ros.messages.pointcloud import array_to_cloud, cloud_to_points
from tacocc_ros.messages.stamps import make_header
from tacocc_ros.node.outputs import MarkerBuilder, build_cloud, occupied_voxels

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--voxels", type=int, default=30_000, help="occupied voxels in the output grid")
    parser.add_argument("--threads", type=int, default=2, help="decoder threads")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 704), metavar=("H", "W"))
    args = parser.parse_args()

    frame = args.fixtures / "nuscenes_frame"
    jpegs = [CompressedImage(format="jpeg", data=p.read_bytes()) for p in sorted(frame.glob("*.jpg"))]
    if len(jpegs) != 6:
        raise SystemExit(f"{frame}: expected 6 camera JPEGs, found {len(jpegs)}")
    raw = np.fromfile(next(frame.glob("*LIDAR_TOP*.pcd.bin")), dtype=np.float32).reshape(-1, 5)
    sweep = np.zeros(len(raw), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])
    for i, name in enumerate(sweep.dtype.names):
        sweep[name] = raw[:, i]
    cloud_msg = array_to_cloud(sweep, make_header(0, "LIDAR_TOP"))

    occ3d = np.load(args.fixtures / "occ3d" / "labels.npz")
    labels = occ3d_to_dense(occ3d["semantics"], None)
    flat, _ = occupied_voxels(labels, SURROUNDOCC_GRID, args.voxels)
    capped = np.zeros_like(labels).reshape(-1)
    capped[flat] = labels.reshape(-1)[flat]
    labels = capped.reshape(labels.shape)

    size = tuple(args.size)
    builder = MarkerBuilder(SURROUNDOCC_GRID)
    markers = builder.build(labels, 1, "LIDAR_TOP")
    occupancy = build_cloud(labels, SURROUNDOCC_GRID, 1, "LIDAR_TOP")
    pool = ThreadPoolExecutor(args.threads)
    rows = {
        f"decode 6 JPEGs 1600x900 -> {size[0]}x{size[1]}, {args.threads} threads": median_wall_cpu_ms(
            lambda: decode_cameras(jpegs, size, executor=pool), args.repeats
        ),
        f"PointCloud2 -> (N, 4), N = {len(sweep)}": median_wall_cpu_ms(
            lambda: cloud_to_points(cloud_msg), args.repeats
        ),
        f"markers, {len(flat)} voxels (Point cache warm)": median_wall_cpu_ms(
            lambda: builder.build(labels, 2, "LIDAR_TOP"), args.repeats
        ),
        f"occupancy PointCloud2, {len(flat)} voxels": median_wall_cpu_ms(
            lambda: build_cloud(labels, SURROUNDOCC_GRID, 2, "LIDAR_TOP"), args.repeats
        ),
    }
    total = (sum(w for w, _ in rows.values()), sum(c for _, c in rows.values()))
    extra = {
        "decode 6 JPEGs one by one": median_wall_cpu_ms(lambda: decode_cameras(jpegs, size), args.repeats),
        "markers, cold cache (first frame)": median_wall_cpu_ms(
            lambda: MarkerBuilder(SURROUNDOCC_GRID).build(labels, 2, "LIDAR_TOP"), max(3, args.repeats // 4)
        ),
        "serialise MarkerArray (publish cost)": median_wall_cpu_ms(lambda: serialize_message(markers), args.repeats),
        "serialise occupancy PointCloud2": median_wall_cpu_ms(lambda: serialize_message(occupancy), args.repeats),
    }
    width = max(map(len, [*rows, *extra]))
    print(f"{'':<{width}}  {'wall ms':>8}  {'cpu ms':>8}")
    for name, (wall, cpu) in [*rows.items(), ("total (target <= 30 ms)", total)]:
        print(f"{name:<{width}}  {wall:8.2f}  {cpu:8.2f}")
    print("not in the total:")
    for name, (wall, cpu) in extra.items():
        print(f"{name:<{width}}  {wall:8.2f}  {cpu:8.2f}")


if __name__ == "__main__":
    main()
