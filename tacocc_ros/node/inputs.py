"""The occupancy node's input subscriptions while it is active: cameras, CameraInfo, LiDAR, odometry.

Each is an `AdaptiveSubscription` (input_qos.py): its QoS follows what the publishers on its topic offer
(`sensor_reliability`, `camera_info_durability`: `auto`), so default, sensor-data and latched publishers
are all heard. `refresh()` (the node calls it periodically) re-adapts them, and for a camera whose image
topic is an image_transport name (`<base>/compressed`) with no publisher while the older
`<base>_compressed` has one, also subscribes that older name. It returns, per topic, the publishers that
still cannot be heard and why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from tacocc_core.bags.topics import legacy_image_topic
from tacocc_ros.node.input_qos import AdaptiveSubscription, QosChoice
from tacocc_ros.node.node_params import CameraInput


class NodeInputs:
    """Create the node's input subscriptions; `refresh()` them; `destroy()` them (deactivation).

    Args:
        node: the rclpy node.
        cameras: the per-camera inputs (node_params.camera_inputs).
        values: the node's parameter values (topics, queue depths, QoS choices).
        on_image, on_info: called with (CameraInput, message).
        on_cloud, on_odom: called with the message.
        group: the callback group of every input.
        say: called with (topic, line) for what the node should log once (a fallback to an older name).
    """

    def __init__(
        self,
        node: Any,
        cameras: list[CameraInput],
        values: dict[str, Any],
        on_image: Callable[[CameraInput, Any], None],
        on_info: Callable[[CameraInput, Any], None],
        on_cloud: Callable[[Any], None],
        on_odom: Callable[[Any], None],
        group: Any,
        say: Callable[[str, str], None],
    ) -> None:
        reliability = values["sensor_reliability"]
        self.node, self.say, self.group, self.on_image = node, say, group, on_image
        self.image_choice = QosChoice(reliability, "auto", values["image_queue_depth"])
        info_choice = QosChoice(
            "reliable" if values["camera_info_durability"] == "transient_local" else "auto",
            values["camera_info_durability"],
            1,
        )
        lidar_choice = QosChoice(reliability, "auto", values["lidar_queue_depth"])
        odom_choice = QosChoice(reliability, "auto", 10)
        self.cameras = cameras
        self.subscriptions: dict[str, AdaptiveSubscription] = {}
        self._legacy: dict[str, CameraInput] = {}  # older image topic -> its camera, until subscribed
        for cam in cameras:
            msg_type = CompressedImage if cam.transport == "compressed" else Image
            self._add(msg_type, cam.image_topic, functools.partial(on_image, cam), self.image_choice)
            self._add(CameraInfo, cam.info_topic, functools.partial(on_info, cam), info_choice)
            legacy = legacy_image_topic(cam.image_topic) if cam.transport == "compressed" else None
            if legacy is not None:
                self._legacy[legacy] = cam
        self._add(PointCloud2, values["lidar_topic"], on_cloud, lidar_choice)
        self._add(Odometry, values["odom_topic"], on_odom, odom_choice)
        self._use_legacy_names()

    def _add(self, msg_type: Any, topic: str, callback: Callable[[Any], None], choice: QosChoice) -> None:
        self.subscriptions[topic] = AdaptiveSubscription(self.node, msg_type, topic, callback, choice, self.group)

    def _use_legacy_names(self) -> None:
        for legacy, cam in list(self._legacy.items()):
            if self.subscriptions[cam.image_topic].publisher_count() > 0:
                continue
            offered = [
                p for p in self.node.get_publishers_info_by_topic(legacy) if p.topic_type.endswith("/CompressedImage")
            ]
            if offered:
                del self._legacy[legacy]
                self._add(CompressedImage, legacy, functools.partial(self.on_image, cam), self.image_choice)
                self.say(
                    legacy,
                    f"{cam.name}: no publisher on {cam.image_topic}; hearing the older name {legacy} "
                    "(image_transport names a compressed topic <base>/compressed)",
                )

    def refresh(self) -> dict[str, list[str]]:
        """Re-adapt every subscription; {topic: reasons} for the publishers still unheard (none: absent)."""
        self._use_legacy_names()
        unheard = {}
        for topic, subscription in self.subscriptions.items():
            if reasons := subscription.refresh():
                unheard[topic] = reasons
        return unheard

    def profiles(self) -> dict[str, str]:
        """{topic: `reliability durability`} of each subscription as it is now."""
        return {
            topic: f"{s.profile.reliability.name.lower()} {s.profile.durability.name.lower()}"
            for topic, s in self.subscriptions.items()
        }

    def destroy(self) -> None:
        for subscription in self.subscriptions.values():
            subscription.destroy()
        self.subscriptions.clear()
