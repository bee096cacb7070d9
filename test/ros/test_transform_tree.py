"""tacocc_core.rig.transform_tree: TransformStamped lists -> cam2lidar per camera and lidar2ego, on the real rig."""

from __future__ import annotations

import json

import numpy as np
import pytest
from geometry_msgs.msg import TransformStamped
from scipy.spatial.transform import Rotation

from tacocc_core.bags import messages as bag_messages
from tacocc_core.geometry import invert_transform, make_transform
from tacocc_core.rig.transform_tree import (
    FrameTransform,
    TransformTree,
    TransformTreeError,
    rig_from_transforms,
    transform_to_matrix,
)


def stamped(parent: str, child: str, child2parent: np.ndarray) -> TransformStamped:
    """An rclpy TransformStamped as a /tf_static publisher sends it (quaternion x, y, z, w)."""
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent, child
    t, r = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = map(float, child2parent[:3, 3])
    r.x, r.y, r.z, r.w = map(float, Rotation.from_matrix(child2parent[:3, :3]).as_quat())
    return msg


@pytest.fixture(scope="module")
def rig(nuscenes_frame_dir):
    """The real nuScenes rig of the fixture: lidar2ego and cam2ego per camera (calibrated_sensor values)."""
    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    lidar2ego = np.asarray(calib["lidar"]["lidar2ego"])
    cam2ego = {name: np.asarray(c["cam2ego"]) for name, c in calib["cameras"].items()}
    return lidar2ego, cam2ego


def test_a_tf_static_of_the_real_rig_gives_its_cam2lidar_and_lidar2ego(rig):
    lidar2ego, cam2ego = rig
    transforms = [stamped("base_link", "LIDAR_TOP", lidar2ego)]
    transforms += [stamped("base_link", name, c2e) for name, c2e in cam2ego.items()]
    out = rig_from_transforms(transforms, "LIDAR_TOP", "base_link", {name: name for name in cam2ego})
    assert out.missing == {}
    np.testing.assert_allclose(out.lidar2ego, lidar2ego, atol=1e-6)
    for name, c2e in cam2ego.items():
        expected = invert_transform(lidar2ego) @ c2e
        np.testing.assert_allclose(out.cam2lidar[name], expected, atol=1e-6, err_msg=name)
    # The real rig's LiDAR has x right, y forward: CAM_FRONT's optical axis (+z) is +y in the LiDAR frame.
    axis = out.cam2lidar["CAM_FRONT"][:3, 2]
    assert axis[1] > 0.99


def test_a_deeper_tree_with_optical_frames_gives_the_same_rig(rig):
    """base_link -> roof -> LIDAR_TOP, roof -> cam_front_link -> cam_front_optical: how URDF rigs look."""
    lidar2ego, cam2ego = rig
    roof2base = make_transform(Rotation.from_euler("z", 7, degrees=True).as_matrix(), [0.5, 0.0, 1.5])
    optical2link = make_transform(Rotation.from_euler("xyz", [-90, 0, -90], degrees=True).as_matrix(), [0, 0, 0])
    link2roof = invert_transform(roof2base) @ cam2ego["CAM_FRONT"] @ invert_transform(optical2link)
    transforms = [
        stamped("base_link", "roof", roof2base),
        stamped("roof", "LIDAR_TOP", invert_transform(roof2base) @ lidar2ego),
        stamped("roof", "cam_front_link", link2roof),
        stamped("cam_front_link", "cam_front_optical", optical2link),
    ]
    out = rig_from_transforms(transforms, "LIDAR_TOP", "base_link", {"CAM_FRONT": "cam_front_optical"})
    np.testing.assert_allclose(
        out.cam2lidar["CAM_FRONT"], invert_transform(lidar2ego) @ cam2ego["CAM_FRONT"], atol=1e-6
    )
    np.testing.assert_allclose(out.lidar2ego, lidar2ego, atol=1e-6)


def test_the_converters_tf_static_reads_back_as_the_rig(rig):
    """rosbags TransformStamped (what `tacocc convert-nuscenes` writes) go through the same functions."""
    lidar2ego, cam2ego = rig
    children = {"LIDAR_TOP": lidar2ego, **cam2ego}
    msg = bag_messages.tf_message(1_000, "base_link", children)
    out = rig_from_transforms(msg.transforms, "LIDAR_TOP", "base_link", {n: n for n in cam2ego})
    for name, c2e in cam2ego.items():
        np.testing.assert_allclose(out.cam2lidar[name], invert_transform(lidar2ego) @ c2e, atol=1e-6)


def test_lookups_invert_and_chain():
    a2root = make_transform(Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix(), [1, 2, 3])
    b2a = make_transform(Rotation.from_euler("z", 90, degrees=True).as_matrix(), [0, 1, 0])
    c2root = make_transform(np.eye(3), [-4, 0, 0])
    tree = TransformTree(
        [FrameTransform("root", "a", a2root), FrameTransform("a", "b", b2a), FrameTransform("root", "c", c2root)]
    )
    b2c = tree.lookup("c", "b")
    np.testing.assert_allclose(b2c, invert_transform(c2root) @ a2root @ b2a, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("b", "c") @ b2c, np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(tree.lookup("a", "a"), np.eye(4))


def test_missing_frames_and_separate_trees_are_named():
    tree_msgs = [stamped("base_link", "LIDAR_TOP", np.eye(4)), stamped("odom", "CAM_BACK", np.eye(4))]
    out = rig_from_transforms(tree_msgs, "LIDAR_TOP", "base_link", {"CAM_FRONT": "CAM_FRONT", "CAM_BACK": "CAM_BACK"})
    assert set(out.cam2lidar) == set()
    assert out.missing["CAM_FRONT"] == "no transform mentions frame 'CAM_FRONT'"
    assert out.missing["CAM_BACK"] == "frames 'CAM_BACK' and 'LIDAR_TOP' are in separate trees"
    assert "lidar2ego" not in out.missing


def test_a_republished_child_replaces_and_a_loop_is_refused():
    tree = TransformTree([FrameTransform("base_link", "cam", make_transform(np.eye(3), [1, 0, 0]))])
    tree.add(FrameTransform("base_link", "cam", make_transform(np.eye(3), [2, 0, 0])))
    assert tree.lookup("base_link", "cam")[0, 3] == 2
    tree.add(FrameTransform("cam", "lens", np.eye(4)))
    with pytest.raises(TransformTreeError, match="loop"):
        tree.add(FrameTransform("lens", "base_link", np.eye(4)))
    assert tree.lookup("base_link", "lens")[0, 3] == 2  # the refused edge left the tree as it was


def test_a_zero_quaternion_is_refused_with_the_frames():
    msg = stamped("base_link", "CAM_FRONT", np.eye(4))
    msg.transform.rotation.w = 0.0
    with pytest.raises(TransformTreeError, match="base_link -> CAM_FRONT"):
        rig_from_transforms([msg], "LIDAR_TOP", "base_link", {"CAM_FRONT": "CAM_FRONT"})
    with pytest.raises(TransformTreeError, match="not a rigid transform"):
        transform_to_matrix(msg.transform)


def test_tf2_ros_buffer_agrees_with_the_pure_tree(rig):
    """Where tf2_ros is installed: the node's adapter (tf2's chaining) and the pure tree give the same rig."""
    tf2_ros = pytest.importorskip("tf2_ros", reason="tf2_ros comes with a ROS 2 install (not on PyPI)")
    from tacocc_ros.node.extrinsics import transform_msg_to_matrix

    lidar2ego, cam2ego = rig
    transforms = [stamped("base_link", "LIDAR_TOP", lidar2ego)] + [
        stamped("base_link", n, m) for n, m in cam2ego.items()
    ]
    buffer = tf2_ros.Buffer()
    for msg in transforms:
        buffer.set_transform_static(msg, "test")
    tree = TransformTree.from_messages(transforms)
    from rclpy.time import Time

    for name in cam2ego:
        theirs = transform_msg_to_matrix(buffer.lookup_transform("LIDAR_TOP", name, Time()).transform)
        np.testing.assert_allclose(theirs, tree.lookup("LIDAR_TOP", name), atol=1e-6)
