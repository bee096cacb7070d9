"""The camera images of a bag nearest to given LiDAR stamps, decoded for pictures (not for the network).

One pass over the bag's image topics keeps, per camera and per wanted stamp, the message whose receive
time (= header stamp in converted bags) is nearest; only those are decoded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from tacocc_core.bags.reading import BagError, BagReader, RawMessage, image_topics


@dataclass(frozen=True)
class CameraImages:
    """The six images of one frame.

    Args:
        images: (V, H, W, 3) uint8 RGB, in the order of `names`.
        names: camera channel names.
        offsets_ns: (V,) int64 image stamp minus the wanted stamp.
    """

    images: np.ndarray
    names: tuple[str, ...]
    offsets_ns: np.ndarray


def decode_jpeg(data: bytes | np.ndarray, where: str) -> np.ndarray:
    """Compressed image bytes -> (H, W, 3) uint8 RGB; BagError naming `where` when they do not decode."""
    buffer = np.frombuffer(bytes(data), dtype=np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if bgr is None:
        raise BagError(f"{where}: the image bytes do not decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def nearest_camera_images(
    bag: str | os.PathLike[str], stamps_ns: Sequence[int], cameras: Sequence[str]
) -> dict[int, CameraImages]:
    """For every stamp, the image of each camera nearest in time.

    Args:
        bag: a rosbag2 bag with `/<CAMERA>/image_rect/compressed` (or the older `..._compressed`) topics.
        stamps_ns: LiDAR stamps (ns) to find images for.
        cameras: camera channel names, e.g. the six nuScenes ones.

    Returns:
        {stamp: CameraImages}; every stamp is present (BagError when a camera topic has no message).
    """
    wanted = np.asarray(sorted(set(int(s) for s in stamps_ns)), dtype=np.int64)
    if wanted.size == 0:
        return {}
    best: dict[str, list[RawMessage | None]] = {c: [None] * wanted.size for c in cameras}
    gap: dict[str, np.ndarray] = {c: np.full(wanted.size, np.iinfo(np.int64).max) for c in cameras}
    with BagReader(bag) as reader:
        topic_of = image_topics(reader.topics, cameras)
        topic_to_camera = {topic: c for c, topic in topic_of.items()}
        for msg in reader.messages(topic_to_camera):
            camera = topic_to_camera[msg.topic]
            distance = np.abs(wanted - msg.stamp_ns)
            closer = distance < gap[camera]
            gap[camera][closer] = distance[closer]
            for i in np.flatnonzero(closer):
                best[camera][i] = msg
        out: dict[int, CameraImages] = {}
        for i, stamp in enumerate(wanted.tolist()):
            images, offsets = [], []
            for camera in cameras:
                nearest = best[camera][i]
                if nearest is None:
                    raise BagError(f"{reader.path}: topic {topic_of[camera]} has no image")
                decoded = reader.decode(nearest)
                images.append(decode_jpeg(decoded.data, f"{reader.path}: {nearest.topic} at {nearest.stamp_ns} ns"))
                offsets.append(nearest.stamp_ns - stamp)
            sizes = {im.shape for im in images}
            if len(sizes) != 1:
                raise BagError(f"{reader.path}: camera images at {stamp} ns differ in size: {sorted(sizes)}")
            out[stamp] = CameraImages(np.stack(images), tuple(cameras), np.asarray(offsets, dtype=np.int64))
    return out
