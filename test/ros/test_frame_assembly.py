"""tacocc_ros.node.frame_assembly: the real nuScenes keyframe's messages -> the Frame, and what it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")
from sensor_msgs.msg import CompressedImage  # noqa: E402

from tacocc_core.rig import sources  # noqa: E402
from tacocc_ros.messages.stamps import ns_to_stamp  # noqa: E402
from tacocc_ros.node.extrinsics import CalibrationExtrinsics  # noqa: E402
from tacocc_ros.node.frame_assembly import FrameAssembly, LidarInput  # noqa: E402
from tacocc_ros.node.frame_builder import PoseBuffer, SweepBuffer  # noqa: E402
from tacocc_ros.node.stats import NodeStats  # noqa: E402
from tacocc_ros.node.sync import SyncedSet  # noqa: E402

SIZE = (64, 176)  # (height, width) the network takes


@pytest.fixture(scope="module")
def real(nuscenes_frame_dir):
    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    rig = sources.rig_from_calib_json(nuscenes_frame_dir / "calib.json")
    stamp = round(calib["timestamp_s"] * 1e9)
    raw = np.fromfile(nuscenes_frame_dir / calib["lidar"]["file"], dtype=np.float32).reshape(-1, 5)
    jpegs = {name: (nuscenes_frame_dir / c["file"]).read_bytes() for name, c in calib["cameras"].items()}
    return rig, stamp, raw[:, :4].copy(), jpegs


def _assembly(rig, sweeps=2):
    errors, warnings = [], []
    stats = NodeStats()
    assembly = FrameAssembly(
        tuple(rig.cameras),
        SIZE,
        {name: f"/{name}/image" for name in rig.cameras},
        CalibrationExtrinsics(rig),
        PoseBuffer(),
        SweepBuffer(sweeps),
        stats,
        lambda reason, message: errors.append((reason, message)),
        lambda key, message: warnings.append((key, message)),
        decode_threads=2,
    )
    return assembly, stats, errors, warnings


def _set(stamp, points, jpegs):
    images = {}
    for name, data in jpegs.items():
        msg = CompressedImage(format="jpeg", data=data)
        msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp), name
        images[name] = (stamp, msg)
    return SyncedSet(stamp, LidarInput(stamp, "LIDAR_TOP", points, 0), images)


def test_the_real_frame_is_assembled_with_previous_sweeps_moved_by_odometry(real):
    rig, stamp, points, jpegs = real
    assembly, stats, errors, warnings = _assembly(rig)
    step = np.eye(4)
    step[0, 3] = 1.0  # the ego drove 1 m forward (global x) in the 50 ms since the previous sweep
    assembly.poses.add(stamp - 50_000_000, np.eye(4))
    assembly.poses.add(stamp, step)
    assembly.sweeps.add(stamp - 50_000_000, points)
    try:
        frame = assembly.build(_set(stamp, points, jpegs), needed_cameras=6, odom_wait_s=0.0)
    finally:
        assembly.close()
    assert frame is not None and not errors and not warnings
    assert frame.images.shape == (6, *SIZE, 3) and frame.camera_valid.all()
    np.testing.assert_allclose(frame.cam2lidar[0], rig.cameras[next(iter(rig.cameras))].cam2lidar)
    assert len(frame.points) == 2 * len(points)
    current, previous = frame.points[: len(points)], frame.points[len(points) :]
    np.testing.assert_array_equal(current[:, :3], points[:, :3])
    # The previous sweep, seen from 1 m further on, sits 1 m behind along the ego's x in the LiDAR frame.
    shift = (previous[:, :3] - current[:, :3]).mean(axis=0)
    expected = np.linalg.inv(rig.lidar2ego)[:3, :3] @ np.array([-1.0, 0.0, 0.0])
    np.testing.assert_allclose(shift, expected, atol=1e-3)


def test_a_corrupt_jpeg_leaves_its_camera_out_and_too_few_cameras_refuse_the_set(real):
    rig, stamp, points, jpegs = real
    assembly, stats, errors, warnings = _assembly(rig)
    broken = dict(jpegs)
    first = next(iter(broken))
    broken[first] = broken[first][:2000]  # a truncated JPEG
    try:
        degraded = assembly.build(_set(stamp, points, broken), needed_cameras=5, odom_wait_s=0.0)
        refused = assembly.build(_set(stamp, points, broken), needed_cameras=6, odom_wait_s=0.0)
    finally:
        assembly.close()
    assert degraded is not None and not degraded.camera_valid[0] and degraded.camera_valid[1:].all()
    assert refused is None
    counts = stats.snapshot(0)
    assert counts["failed"][f"image {first}"] == 2 and counts["failed"]["too few cameras"] == 1
    assert errors[0][0] == f"image {first}" and errors[-1][0] == "too few cameras"
    assert "need 6" in errors[-1][1]
    # No odometry: identity pose, counted, said once.
    assert counts["events"]["no odometry"] == 1 and [k for k, _ in warnings] == ["no odometry"]
