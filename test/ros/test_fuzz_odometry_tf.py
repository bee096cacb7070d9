"""Generated Odometry and TF messages against the node's pose conversions (tacocc_ros/node/frame_builder.py,
tacocc_core/rig/transform_tree.py).

A pose with a finite position and a finite quaternion of any non-zero length becomes a rigid transform
equal to the quaternion formula of the normalised quaternion; a non-finite value or a zero quaternion
raises ValueError / TransformTreeError naming it. Poses arriving with stamps out of order, repeated or
jumping back never make `PoseBuffer.lookup` raise, and what it answers is rigid. Transform trees built
from generated /tf_static messages (loops, self-parents, leading slashes, broken rotations) either refuse
the message with TransformTreeError or answer lookups that are rigid and mutually inverse.
"""

from __future__ import annotations

import math

import fuzz_tally
import numpy as np
from geometry_msgs.msg import TransformStamped
from hypothesis import given
from hypothesis import strategies as st
from nav_msgs.msg import Odometry

from tacocc_core.rig.transform_tree import TransformTree, TransformTreeError, frame_transforms
from tacocc_ros.messages.stamps import ns_to_stamp, stamp_to_ns
from tacocc_ros.node.frame_builder import PoseBuffer, pose_xyzw_to_transform

ODOM, TF = "Odometry", "TF"
finite = st.floats(-1e6, 1e6, allow_nan=False)
component = st.one_of(finite, st.floats(allow_nan=True, allow_infinity=True), st.just(0.0))
# In a tree, a finite translation of 1e15 swamps float64 precision of the other edges: bounded or non-finite.
tf_component = st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf]), st.just(0.0))


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The rotation of a unit quaternion, written out (not scipy's)."""
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def assert_rigid(matrix: np.ndarray) -> None:
    assert matrix.shape == (4, 4) and np.isfinite(matrix).all()
    rotation = matrix[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    assert abs(np.linalg.det(rotation) - 1) < 1e-6
    np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1])


def odometry(position, quaternion, stamp_ns: int = 0) -> Odometry:
    msg = Odometry()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = position
    q.x, q.y, q.z, q.w = quaternion
    return msg


def node_pose(msg: Odometry) -> np.ndarray:
    """What the node's odometry callback computes from a message."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return pose_xyzw_to_transform((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))


@given(st.tuples(component, component, component), st.tuples(component, component, component, component))
def test_generated_odometry_is_a_rigid_pose_or_a_named_error(position, quaternion):
    msg = odometry(position, quaternion)
    values = [*position, *quaternion]
    norm = math.sqrt(sum(v * v for v in quaternion)) if all(map(math.isfinite, quaternion)) else math.nan
    good = all(map(math.isfinite, values)) and 1e-9 <= norm < math.inf
    outcome = fuzz_tally.check(ODOM, "good" if good else "bad", lambda: node_pose(msg), ValueError)
    if good:
        assert outcome.error is None, outcome.message
        assert_rigid(outcome.value)
        unit = np.asarray(quaternion) / norm
        np.testing.assert_allclose(outcome.value[:3, :3], quaternion_matrix(*unit), atol=1e-9)
        np.testing.assert_array_equal(outcome.value[:3, 3], position)
    else:
        assert outcome.error is not None, f"accepted {values}"
        assert "quaternion" in outcome.message or "position" in outcome.message, outcome.message


unit_quaternions = st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: sum(v * v for v in q) > 1e-3)


@given(
    st.lists(
        st.tuples(st.integers(0, 10**10), st.tuples(finite, finite, finite), unit_quaternions), min_size=1, max_size=30
    ),
    st.lists(st.integers(-(10**9), 2 * 10**10), max_size=10),
)
def test_poses_with_stamps_out_of_order_never_break_the_lookup(arrivals, queries):
    """Odometry that jumps back, repeats or interleaves stamps: lookups answer a rigid pose or None."""
    buffer = PoseBuffer(max_poses=8)

    def feed():
        for stamp, position, quaternion in arrivals:
            msg = odometry(position, quaternion, stamp)
            buffer.add(stamp_to_ns(msg.header.stamp), node_pose(msg))
        return [buffer.lookup(t) for t in [*queries, arrivals[-1][0]]]

    outcome = fuzz_tally.check(ODOM + " stamps", "out of order", feed, ())
    answers = outcome.value
    for answer in answers:
        if answer is not None:
            assert_rigid(answer)
    assert answers[-1] is not None  # the newest pose is always found at its own stamp
    assert len(buffer) <= 8


FRAMES = ["base_link", "/base_link", "LIDAR_TOP", "CAM_FRONT", "CAM_BACK", "map"]


@st.composite
def tf_messages(draw) -> tuple[bool, TransformStamped]:
    msg = TransformStamped()
    msg.header.frame_id = draw(st.sampled_from(FRAMES))
    msg.child_frame_id = draw(st.sampled_from(FRAMES))
    t, q = msg.transform.translation, msg.transform.rotation
    good = draw(st.booleans())
    t.x, t.y, t.z = draw(st.tuples(*[finite if good else tf_component] * 3))
    q.x, q.y, q.z, q.w = draw(unit_quaternions) if good else draw(st.tuples(*[tf_component] * 4))
    return good, msg


@given(st.lists(tf_messages(), min_size=1, max_size=8), st.lists(st.sampled_from(FRAMES), min_size=2, max_size=6))
def test_generated_tf_trees_refuse_bad_transforms_and_answer_rigid_lookups(messages, asked):
    tree = TransformTree()
    for good, msg in messages:  # each message is refused on its own; the tree keeps the others

        def add(msg=msg):
            for edge in frame_transforms([msg]):
                tree.add(edge)

        outcome = fuzz_tally.check(TF, "good" if good else "broken", add, TransformTreeError)
        if not good and outcome.error is None:  # a broken one that is still a rotation and a finite shift
            t, q = msg.transform.translation, msg.transform.rotation
            assert all(math.isfinite(v) for v in (t.x, t.y, t.z, q.x, q.y, q.z, q.w))
        if outcome.error is not None:
            assert msg.child_frame_id.lstrip("/") in outcome.message or "loop" in outcome.message
    for a in asked:
        for b in asked:
            ab, ba = tree.lookup(a, b), tree.lookup(b, a)
            assert (ab is None) == (ba is None)
            if ab is not None:
                assert_rigid(ab)
                np.testing.assert_allclose(ab @ ba, np.eye(4), atol=1e-6 * (1 + np.abs(ab).max()))
