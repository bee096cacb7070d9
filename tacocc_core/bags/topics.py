"""Topic names of converted bags and of the occupancy node's inputs.

Camera images follow image_transport's naming: a CompressedImage is published on `<base>/compressed`
(`/CAM_FRONT/image_rect/compressed`), the name RViz 2's Image display and image_transport subscribers
take as compressed. Bags written before that use `<base>_compressed` (`/CAM_FRONT/image_rect_compressed`);
`image_topic_in` finds either, so those bags still read.
"""

from __future__ import annotations

from collections.abc import Iterable

LIDAR_TOPIC = "/LIDAR_TOP"
ODOM_TOPIC = "/odom"
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
    names = set(available)
    current = camera_topics(camera)[0]
    legacy = legacy_image_topic(current)
    for topic in (current, legacy):
        if topic in names:
            return topic
    return None
