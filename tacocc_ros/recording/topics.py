"""Which topics `tacocc record` records: the occupancy node's inputs, by default or from its params file.

The node's inputs are its LiDAR (`lidar_topic`), odometry (`odom_topic`), each camera's image and
CameraInfo (`cameras.<NAME>.image_topic`, `cameras.<NAME>.info_topic`), `/tf` and `/tf_static` (its
extrinsics when TF is used, and what a recording needs to carry the rig). Names come from the node's
parameter defaults (`tacocc_ros.node.node_params`) for the cameras of the model preset, overridden by
the entries of a ROS 2 params file written for the occupancy node.
"""

from __future__ import annotations

import os
from typing import Any

from tacocc_core.bags.topics import TF_STATIC_TOPIC, TF_TOPIC, read_params_file
from tacocc_ros.node.node_params import camera_inputs, param_values

NODE_NAME = "occupancy_node"


class TopicSelectionError(ValueError):
    """A params file or topic list that does not give topics to record (names the file and the entry)."""


def params_file_values(path: str | os.PathLike[str], node_name: str = NODE_NAME) -> dict[str, Any]:
    """The occupancy node's parameters in a ROS 2 params file (`/**`, then its own section), dotted names.

    `tacocc_core.bags.topics.read_params_file`, whose ValueError becomes a TopicSelectionError.
    """
    try:
        return read_params_file(path, node_name)
    except ValueError as err:
        raise TopicSelectionError(str(err)) from None


def node_input_topics(cameras: tuple[str, ...], overrides: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The occupancy node's input topics for `cameras`, with the parameter values in `overrides` applied.

    Order: LiDAR, each camera's image then CameraInfo, odometry, /tf, /tf_static.
    """
    values = param_values(cameras, overrides)
    topics = [values["lidar_topic"]]
    for camera in camera_inputs(values, cameras):
        topics += [camera.image_topic, camera.info_topic]
    topics += [values["odom_topic"], TF_TOPIC, TF_STATIC_TOPIC]
    for topic in topics:
        if not isinstance(topic, str) or not topic.startswith("/") or " " in topic:
            raise TopicSelectionError(f"not an absolute topic name: {topic!r}")
    return tuple(dict.fromkeys(topics))


def check_topics(topics: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Topics given by name: absolute (a leading `/` is added), no spaces, each once."""
    out = []
    for topic in topics:
        name = topic if topic.startswith("/") else "/" + topic
        if name == "/" or " " in name or "//" in name:
            raise TopicSelectionError(f"not a topic name: {topic!r}")
        out.append(name)
    if not out:
        raise TopicSelectionError("no topic to record")
    return tuple(dict.fromkeys(out))
