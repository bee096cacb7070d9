"""The drive's rig on /tf_static, as a vehicle's robot_state_publisher sends it: recordings carry the extrinsics.

`rig_tf_static(frame)` is the tf2_msgs/TFMessage of the frame's rig, as CDR bytes: the LiDAR and each
camera under the ego frame (`<ego> -> LIDAR_TOP` = lidar2ego, `<ego> -> CAM_*` = lidar2ego @ cam2lidar,
child frames named as the messages' `header.frame_id`). The bytes are built with the bag type store
(`tacocc_core.bags.messages.tf_message`), the same message `tacocc convert-nuscenes` writes into bags.

`TfStaticPublisher` publishes them once, latched (reliable, transient local, depth 1), so a node or a
recorder that starts later still gets them. Publishing needs the tf2_msgs Python package, which comes
with a ROS 2 install and is not among the PyPI ROS wheels: without it `available` is False and `reason`
says why (the node then takes its extrinsics from the calibration file the drive writes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from tacocc_core.bags.messages import TF_MESSAGE, serialize, tf_message
from tacocc_core.bags.topics import TF_STATIC_TOPIC
from tacocc_ros.bags.player import message_class
from tacocc_ros.tooling.drive_source import DriveFrame

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def rig_children(frame: DriveFrame) -> dict[str, np.ndarray]:
    """Child frame -> (4, 4) float64 child2ego of the frame's LiDAR and cameras."""
    rig = frame.calibration
    children = {frame.lidar_frame: np.asarray(rig.lidar2ego, dtype=np.float64)}
    for name, camera in rig.cameras.items():
        children[camera.frame_id or name] = rig.lidar2ego @ camera.cam2lidar
    return children


def rig_tf_static(frame: DriveFrame, stamp_ns: int, ego_frame: str | None = None) -> bytes:
    """CDR bytes of the tf2_msgs/TFMessage of the frame's rig (see the module docstring)."""
    parent = ego_frame or frame.calibration.ego_frame
    return serialize(tf_message(stamp_ns, parent, rig_children(frame)))


class TfStaticPublisher:
    """Publishes the rig once on /tf_static, latched, where tf2_msgs is importable (module docstring).

    Args:
        node: the rclpy node that owns the publisher.
        topic: the static TF topic.
    """

    def __init__(self, node: Any, topic: str = TF_STATIC_TOPIC) -> None:
        cls = message_class(TF_MESSAGE)
        self.publisher = None if cls is None else node.create_publisher(cls, topic, LATCHED)
        self.reason = "" if cls is not None else f"{TF_MESSAGE} is not installed here (tf2_msgs comes with ROS 2)"

    @property
    def available(self) -> bool:
        return self.publisher is not None

    def publish(self, frame: DriveFrame, stamp_ns: int) -> bool:
        """Publish the rig (the CDR bytes as they are); False when tf2_msgs is missing."""
        if self.publisher is None:
            return False
        self.publisher.publish(rig_tf_static(frame, stamp_ns))
        return True
