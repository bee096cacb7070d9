"""Topic names of converted bags and of the occupancy node's inputs; `SensorTopics` for any other bag.

Camera images follow image_transport's naming: a CompressedImage is published on `<base>/compressed`
(`/CAM_FRONT/image_rect/compressed`), the name RViz 2's Image display and image_transport subscribers
take as compressed. Bags written before that use `<base>_compressed` (`/CAM_FRONT/image_rect_compressed`);
`image_topic_in` finds either, so those bags still read.

`SensorTopics` holds the topic names a bag is read with, taken from the occupancy node's parameters
(`lidar_topic`, `odom_topic`, `cameras.<NAME>.image_topic`, `cameras.<NAME>.info_topic`, `ego_frame`)
plus `labels_topic`; its defaults are the names above. `SensorTopics.from_params` builds it from
parameter values (the training node's, or a ROS params file read with `read_params_file`), so that one
params file serves the occupancy node, the training node and `tacocc calibration --bag`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LIDAR_TOPIC = "/LIDAR_TOP"
ODOM_TOPIC = "/odom"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
LABELS_TOPIC = "/occupancy/gt"
COMPRESSED_SUFFIX = "/compressed"
LEGACY_COMPRESSED_SUFFIX = "_compressed"


def camera_topics(camera: str) -> tuple[str, str]:
    """(image topic, camera_info topic) of a camera channel.

    CAM_FRONT -> ("/CAM_FRONT/image_rect/compressed", "/CAM_FRONT/camera_info").
    """
    return f"/{camera}/image_rect{COMPRESSED_SUFFIX}", f"/{camera}/camera_info"


def legacy_image_topic(topic: str) -> str | None:
    """The older name of an image_transport compressed topic (`<base>/compressed` -> `<base>_compressed`).

    None when `topic` does not end in `/compressed` (a raw topic, or a name the user chose).
    """
    if not topic.endswith(COMPRESSED_SUFFIX) or len(topic) <= len(COMPRESSED_SUFFIX) + 1:
        return None
    return topic[: -len(COMPRESSED_SUFFIX)] + LEGACY_COMPRESSED_SUFFIX


def image_topic_in(available: Iterable[str], camera: str) -> str | None:
    """The image topic of `camera` among `available` names: the current name, else the older one, else None."""
    return resolve_image_topic(available, camera_topics(camera)[0])


def resolve_image_topic(available: Iterable[str], topic: str) -> str | None:
    """`topic` if among `available`, else its older compressed name if that one is, else None."""
    names = set(available)
    for name in (topic, legacy_image_topic(topic)):
        if name is not None and name in names:
            return name
    return None


@dataclass(frozen=True)
class SensorTopics:
    """The topics (and the vehicle frame) a bag is read with; defaults: the converter's names.

    `images` / `infos` hold per-camera names that differ from `camera_topics(camera)`; `image(camera)`
    and `info(camera)` give the name to use for any camera. `ego_frame` is the child frame of the
    odometry, and the frame whose motion is looked up in /tf when the bag has no odometry.
    """

    lidar: str = LIDAR_TOPIC
    odom: str = ODOM_TOPIC
    labels: str = LABELS_TOPIC
    tf: str = TF_TOPIC
    tf_static: str = TF_STATIC_TOPIC
    ego_frame: str = "base_link"
    images: Mapping[str, str] = field(default_factory=dict)
    infos: Mapping[str, str] = field(default_factory=dict)

    def image(self, camera: str) -> str:
        return self.images.get(camera, camera_topics(camera)[0])

    def info(self, camera: str) -> str:
        return self.infos.get(camera, camera_topics(camera)[1])

    @property
    def cameras(self) -> tuple[str, ...]:
        """The camera names given a topic explicitly (in the order given)."""
        return tuple(dict.fromkeys([*self.images, *self.infos]))

    @staticmethod
    def param_of(what: str, camera: str | None = None) -> str:
        """The parameter naming a topic: ("image", "CAM_FRONT") -> "cameras.CAM_FRONT.image_topic"."""
        if camera is not None:
            return f"cameras.{camera}.{what}_topic"
        return "ego_frame" if what == "ego" else f"{what}_topic"

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> SensorTopics:
        """From parameter values (flat names as the nodes declare them); absent ones keep their defaults."""
        images: dict[str, str] = {}
        infos: dict[str, str] = {}
        for name, value in values.items():
            parts = name.split(".")
            if len(parts) == 3 and parts[0] == "cameras" and parts[2] in ("image_topic", "info_topic") and value:
                (images if parts[2] == "image_topic" else infos)[parts[1]] = str(value)
        plain = {"lidar": "lidar_topic", "odom": "odom_topic", "labels": "labels_topic", "ego_frame": "ego_frame"}
        given = {key: str(values[param]) for key, param in plain.items() if values.get(param)}
        return cls(images=images, infos=infos, **given)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_params_file(path: str | os.PathLike[str], node: str = "") -> dict[str, Any]:
    """The parameters a ROS 2 params file (`/**: ros__parameters: ...`) gives a node, flat dotted names.

    The `/**` section first, then the section of `node` (its name with or without the leading slash);
    nested mappings flatten as ROS does (`cameras: {CAM_FRONT: {image_topic: x}}` ->
    `cameras.CAM_FRONT.image_topic`). ValueError names the file when it is not such a file.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: not a readable YAML params file ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a ROS params file is a mapping of node names to ros__parameters")
    values: dict[str, Any] = {}
    sections = ["/**", *((node, "/" + node.lstrip("/")) if node else ())]
    for key in dict.fromkeys(sections):
        section = data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ValueError(f"{path}: section {key!r} must hold a ros__parameters mapping")
        values.update(_flatten(section["ros__parameters"]))
    if not values and data:
        raise ValueError(f"{path}: no /** section{f' or {node!r}' if node else ''} with ros__parameters")
    return values
