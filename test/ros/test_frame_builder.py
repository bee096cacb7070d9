"""tacocc_ros.node.frame_builder: poses by stamp, multi-sweep accumulation (against nuscenes-devkit), camera arrays."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tacocc_core.config import load_preset
from tacocc_core.data.nuscenes_reader import NuScenesReader, read_pcd_bin
from tacocc_core.geometry import ImageTransform, make_transform, pose_to_transform
from tacocc_ros.node.frame_builder import PoseBuffer, SweepBuffer, camera_arrays, pose_xyzw_to_transform

S = 1_000_000_000


def pose(yaw_deg: float, x: float) -> np.ndarray:
    return make_transform(Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix(), [x, 2.0 * x, 0.0])


def test_pose_quaternion_order_is_xyzw():
    quarter = pose_xyzw_to_transform([1, 2, 3], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(quarter[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(quarter[:3, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="no direction"):
        pose_xyzw_to_transform([0, 0, 0], [0, 0, 0, 0])


def test_pose_buffer_interpolates_between_and_tolerates_just_outside():
    poses = PoseBuffer(tolerance_ns=50_000_000)
    poses.add(10 * S, pose(0, 0.0))
    poses.add(11 * S, pose(90, 10.0))
    np.testing.assert_allclose(poses.lookup(10 * S), pose(0, 0.0))
    np.testing.assert_allclose(poses.lookup(10 * S + S // 4), pose(22.5, 2.5), atol=1e-12)
    np.testing.assert_allclose(poses.lookup(11 * S + 40_000_000), pose(90, 10.0))
    assert poses.lookup(11 * S + 60_000_000) is None and poses.lookup(9 * S) is None
    assert poses.wait_for(10 * S + S // 2, 0.0) and not poses.wait_for(12 * S, 0.01)
    assert poses.add(5 * S, pose(0, 1.0)) and len(poses) == 1  # a bag loop clears the buffer
    assert not poses.wait_for(12 * S, 0.0)  # poses from before the loop do not count


def test_sweep_buffer_matches_nuscenes_multisweep(synthetic_dataset):
    """Sweeps moved by odometry-style poses equal `LidarPointCloud.from_file_multisweep` of the reader."""
    tiny = load_preset("tiny")
    reader = NuScenesReader.open(synthetic_dataset, "v1.0-mini", tiny)
    nusc = reader.nusc
    sample = nusc.get("sample", nusc.get("sample", nusc.scene[0]["first_sample_token"])["next"])
    expected = reader.frame(sample["token"]).points

    sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    lidar2ego = pose_to_transform(cs["translation"], cs["rotation"])
    chain = [sd]
    while chain[-1]["prev"] and len(chain) <= tiny.lidar.sweeps:
        chain.append(nusc.get("sample_data", chain[-1]["prev"]))
    poses, sweeps = PoseBuffer(), SweepBuffer(tiny.lidar.sweeps)
    for item in reversed(chain):
        ego = nusc.get("ego_pose", item["ego_pose_token"])
        poses.add(item["timestamp"] * 1000, pose_to_transform(ego["translation"], ego["rotation"]))
        points = read_pcd_bin(synthetic_dataset / item["filename"])[:, :4]
        points = points[~((np.abs(points[:, 0]) < 1.0) & (np.abs(points[:, 1]) < 1.0))]  # devkit's remove_close
        sweeps.add(item["timestamp"] * 1000, points)
    stamp = sd["timestamp"] * 1000
    current = sweeps._items[-1][1]
    got = sweeps.accumulate(stamp, current, lambda s: None if poses.lookup(s) is None else poses.lookup(s) @ lidar2ego)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got[:, :4], expected[:, :4], atol=2e-3)
    np.testing.assert_allclose(got[:, 4], expected[:, 4], atol=1e-6)
    assert len(np.unique(got[:, 4])) == len(chain)


def test_sweeps_without_poses_are_left_out_and_a_loop_clears():
    sweeps = SweepBuffer(2)
    a, b = np.ones((3, 4), np.float32), np.full((2, 4), 2, np.float32)
    sweeps.add(S, a)
    sweeps.add(S + S // 10, b)
    only_current = sweeps.accumulate(S + S // 5, b, lambda s: None)
    assert only_current.shape == (2, 5) and (only_current[:, 4] == 0).all()
    merged = sweeps.accumulate(S + S // 5, b, lambda s: np.eye(4))
    np.testing.assert_allclose(merged[:, 4], [0, 0, 0.1, 0.1, 0.2, 0.2, 0.2], atol=1e-7)
    sweeps.add(S // 2 - 5 * S // 10, a)  # far back: a bag loop
    assert len(sweeps._items) == 1 and sweeps.previous(S + S // 5) == []


def test_camera_arrays_apply_the_transform_and_leave_out_incomplete_cameras():
    t = ImageTransform.resize_crop_bottom((90, 160), (64, 176))
    k = np.array([[100.0, 0, 80], [0, 100, 45], [0, 0, 1]])
    image = np.full((64, 176, 3), 7, np.uint8)
    decoded = {"A": (image, t), "B": (image, t), "C": (image, t)}
    images, cam2img, cam2lidar, valid, missing = camera_arrays(
        ("A", "B", "C", "D"), (64, 176), decoded, {"A": k, "C": k}, {"A": np.eye(4), "B": np.eye(4)}
    )
    assert valid.tolist() == [True, False, False, False]
    assert set(missing) == {"B", "C", "D"} and "intrinsics" in missing["B"] and "extrinsics" in missing["C"]
    np.testing.assert_allclose(cam2img[0], t.apply_to_intrinsics(k))
    assert (images[0] == 7).all() and (images[1:] == 0).all()
    with pytest.raises(ValueError, match="decoded image has shape"):
        camera_arrays(("A",), (32, 88), decoded, {"A": k}, {"A": np.eye(4)})
