"""tacocc_core.bags.ego_motion: the ego frame's pose from /tf (+ /tf_static) when a bag has no odometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tacocc_core.bags.ego_motion import StampedTransform, ego_poses_from_tf
from tacocc_core.bags.reading import BagError
from tacocc_core.geometry import make_transform
from tacocc_core.rig.transform_tree import FrameTransform


def edge(parent: str, child: str, yaw: float, xyz) -> FrameTransform:
    return FrameTransform(parent, child, make_transform(Rotation.from_euler("z", yaw).as_matrix(), xyz))


def moving(n: int) -> list[StampedTransform]:
    """odom -> base_link at 0, 100, ... ms, driving along x and turning."""
    return [StampedTransform(i * 100_000_000, edge("odom", "base_link", 0.05 * i, [i, 0.1 * i, 0])) for i in range(n)]


def test_the_chain_is_composed_at_every_stamp_of_the_lowest_moving_link():
    correction = [
        StampedTransform(0, edge("map", "odom", 0.0, [1, 0, 0])),
        StampedTransform(250_000_000, edge("map", "odom", 0.1, [2, 0, 0])),  # a later map -> odom correction
    ]
    static = [edge("earth", "map", 0.2, [0, 0, 5]), edge("base_link", "lidar", 0.0, [1, 0, 2])]  # the lidar: below
    poses = ego_poses_from_tf([*moving(5), *correction], static, "base_link")
    assert [s for s, _ in poses] == [i * 100_000_000 for i in range(5)]
    for (stamp, pose), odom in zip(poses, moving(5), strict=True):
        held = correction[0] if stamp < 250_000_000 else correction[1]  # latest at or before the stamp
        want = static[0].child2parent @ held.edge.child2parent @ odom.edge.child2parent
        np.testing.assert_allclose(pose, want, atol=1e-12)


def test_no_moving_link_above_the_ego_frame_gives_no_poses():
    assert ego_poses_from_tf([], [edge("odom", "base_link", 0.0, [0, 0, 0])], "base_link") == []
    assert ego_poses_from_tf(moving(3), [], "vehicle") == []  # another frame moves, not this one


def test_a_loop_is_named():
    loop = [
        StampedTransform(0, edge("a", "base_link", 0, [0, 0, 0])),
        StampedTransform(0, edge("base_link", "a", 0, [0, 0, 0])),
    ]
    with pytest.raises(BagError, match="loop"):
        ego_poses_from_tf(loop, [], "base_link")
