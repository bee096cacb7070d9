"""Where the node gets camera -> LiDAR and LiDAR -> ego transforms: TF, or the calibration file.

Both sources answer the same three questions, so the node does not care which one runs:
`cam2lidar(camera, camera_frame, lidar_frame)`, `lidar2ego(lidar_frame)` and the fallback intrinsics
`cam2img(camera)` (used when no CameraInfo arrived), and `description` says which source it is for the
node's `ready` line. tf2_ros comes with a ROS 2 install and is not on PyPI; `make_extrinsics` takes TF
when it is importable and no calibration file is given (or when asked for explicitly), the calibration
file otherwise.

`TfExtrinsics` is the thin tf2_ros adapter: tf2's listener and buffer receive /tf and /tf_static and
chain the lookups; the message -> matrix conversion is `tacocc_core.rig.transform_tree`'s, whose
`TransformTree` is the same logic without tf2 (what `tacocc calibration --bag` runs on a bag's
/tf_static; test/ros/test_transform_tree.py checks both agree where tf2_ros is installed).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from tacocc_core.rig.transform_tree import TransformTreeError, transform_to_matrix
from tacocc_ros.node.calibration import RigCalibration

try:  # a ROS 2 install
    import tf2_ros as _tf2_ros
except ImportError:
    _tf2_ros = None


def have_tf2_ros() -> bool:
    return _tf2_ros is not None


class Extrinsics(Protocol):
    description: str

    def cam2lidar(self, camera: str, camera_frame: str, lidar_frame: str) -> np.ndarray | None: ...

    def lidar2ego(self, lidar_frame: str) -> np.ndarray | None: ...

    def cam2img(self, camera: str) -> np.ndarray | None: ...


class CalibrationExtrinsics:
    """Transforms from a `RigCalibration` (the calibration YAML); frame ids are not consulted."""

    def __init__(self, calibration: RigCalibration, path: str = "") -> None:
        self.calibration = calibration
        self.description = f"calibration file {path}" if path else "calibration file"

    def cam2lidar(self, camera: str, camera_frame: str, lidar_frame: str) -> np.ndarray | None:
        cam = self.calibration.cameras.get(camera)
        return None if cam is None else cam.cam2lidar

    def lidar2ego(self, lidar_frame: str) -> np.ndarray | None:
        return self.calibration.lidar2ego

    def cam2img(self, camera: str) -> np.ndarray | None:
        cam = self.calibration.cameras.get(camera)
        return None if cam is None else cam.cam2img


def transform_msg_to_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform (rotation quaternion x, y, z, w) -> (4, 4) float64 (TransformTreeError if bad)."""
    return transform_to_matrix(transform)


class TfExtrinsics:
    """Latest transforms from TF (static calibration), with the calibration file's intrinsics as fallback.

    Args:
        node: the rclpy node that listens to /tf and /tf_static.
        ego_frame: the odometry's child frame (base_link).
        calibration: optional file for `cam2img` when no CameraInfo is available.
        qos, static_qos: the /tf and /tf_static subscription profiles (None: tf2_ros's own).
    """

    def __init__(
        self,
        node: Any,
        ego_frame: str = "base_link",
        calibration: RigCalibration | None = None,
        qos: Any = None,
        static_qos: Any = None,
    ) -> None:
        if _tf2_ros is None:
            raise ImportError("tf2_ros is not importable (it comes with a ROS 2 install); use a calibration file")
        self.buffer = _tf2_ros.Buffer()
        self.listener = _tf2_ros.TransformListener(self.buffer, node, qos=qos, static_qos=static_qos)
        self.ego_frame = ego_frame
        self.calibration = calibration
        self.description = f"TF (/tf, /tf_static; ego frame {ego_frame})"

    def _lookup(self, target: str, source: str) -> np.ndarray | None:
        from rclpy.time import Time

        try:
            stamped = self.buffer.lookup_transform(target, source, Time())
        except (_tf2_ros.LookupException, _tf2_ros.ConnectivityException, _tf2_ros.ExtrapolationException):
            return None
        try:
            return transform_msg_to_matrix(stamped.transform)
        except TransformTreeError:
            return None

    def cam2lidar(self, camera: str, camera_frame: str, lidar_frame: str) -> np.ndarray | None:
        return self._lookup(lidar_frame, camera_frame)

    def lidar2ego(self, lidar_frame: str) -> np.ndarray | None:
        return self._lookup(self.ego_frame, lidar_frame)

    def cam2img(self, camera: str) -> np.ndarray | None:
        cam = None if self.calibration is None else self.calibration.cameras.get(camera)
        return None if cam is None else cam.cam2img


def make_extrinsics(
    node: Any,
    source: str,
    calibration: RigCalibration | None,
    ego_frame: str = "base_link",
    calibration_path: str = "",
    tf_qos: tuple[Any, Any] = (None, None),
) -> Extrinsics:
    """`source`: "tf", "calibration", or "auto" (TF where importable and no calibration file is given).

    `calibration_path` names the file in the `description` of the calibration source; `tf_qos` the
    (/tf, /tf_static) subscription profiles of the TF source.
    """
    if source not in ("auto", "tf", "calibration"):
        raise ValueError(f"extrinsics source must be auto, tf or calibration, got {source!r}")
    use_tf = source == "tf" or (source == "auto" and calibration is None and have_tf2_ros())
    if use_tf:
        return TfExtrinsics(node, ego_frame, calibration, *tf_qos)
    if calibration is None:
        raise ValueError(
            "no calibration file given and TF is "
            + ("not requested" if have_tf2_ros() else "not available (tf2_ros is not importable)")
            + ": set the `calibration` parameter"
        )
    return CalibrationExtrinsics(calibration, calibration_path)
