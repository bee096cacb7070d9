"""sensor_msgs/CameraInfo -> the 3x3 intrinsic matrix the network projects with.

The node reads rectified images (`image_rect`), so only K is used: the distortion model and D describe
the raw image and are not applied. K must be a pinhole matrix: finite, positive focal lengths, and a last
row of (0, 0, 1); anything else raises CameraInfoError naming the topic, the entry and its value.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo

__all__ = ["CameraInfoError", "camera_intrinsics"]


class CameraInfoError(ValueError):
    """A CameraInfo whose K cannot be used; the message names the topic, the entry and the value."""


def camera_intrinsics(msg: CameraInfo, source: str = "CameraInfo") -> np.ndarray:
    """K of `msg` as a (3, 3) float64 array (row-major, as CameraInfo stores it), checked.

    Raises CameraInfoError when an entry is not finite, a focal length K[0, 0] / K[1, 1] is not positive,
    or the last row is not (0, 0, 1).
    """
    k = np.asarray(msg.k, dtype=np.float64)
    if k.shape != (9,):
        raise CameraInfoError(f"{source}: K has {k.size} entries, expected 9")
    k = k.reshape(3, 3)
    bad = ~np.isfinite(k)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise CameraInfoError(f"{source}: K[{r}, {c}] is {k[r, c]}, not a finite number: {k.tolist()}")
    for i, name in ((0, "fx"), (1, "fy")):
        if not k[i, i] > 0:
            raise CameraInfoError(f"{source}: K[{i}, {i}] ({name}) is {k[i, i]}: no focal length: {k.tolist()}")
    if not np.array_equal(k[2], [0.0, 0.0, 1.0]):
        raise CameraInfoError(f"{source}: K's last row is {k[2].tolist()}, expected [0.0, 0.0, 1.0]: {k.tolist()}")
    return k
