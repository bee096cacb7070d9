"""Topic names of converted bags and of the occupancy node's inputs (those of the common nuScenes converters)."""

from __future__ import annotations

LIDAR_TOPIC = "/LIDAR_TOP"
ODOM_TOPIC = "/odom"
TF_STATIC_TOPIC = "/tf_static"
LABELS_TOPIC = "/occupancy/gt"


def camera_topics(camera: str) -> tuple[str, str]:
    """(image topic, camera_info topic) of a camera channel.

    CAM_FRONT -> ("/CAM_FRONT/image_rect_compressed", "/CAM_FRONT/camera_info").
    """
    return f"/{camera}/image_rect_compressed", f"/{camera}/camera_info"
