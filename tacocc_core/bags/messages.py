"""ROS 2 messages as `rosbags` dataclasses, built from numpy (no rclpy): what the bag writer records.

All stamps are integer nanoseconds; all poses 4x4 float64 `a2b` matrices. Quaternions go into the
messages in ROS order (x, y, z, w). The type definitions are those of `TYPESTORE` (ROS 2 Jazzy's, the
same definitions Kilted has for these types), which also serialises the messages to CDR.
"""

from __future__ import annotations

import numpy as np
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from tacocc_core.bags.cloud_layout import dtype_to_fields

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
_T = TYPESTORE.types

COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
NS_PER_S = 1_000_000_000


def header(stamp_ns: int, frame_id: str):
    """std_msgs/Header from integer nanoseconds (>= 0) and a frame id."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ValueError(f"a ROS stamp cannot be negative, got {stamp_ns} ns")
    stamp = _T["builtin_interfaces/msg/Time"](sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)
    return _T["std_msgs/msg/Header"](stamp=stamp, frame_id=str(frame_id))


def compressed_image(stamp_ns: int, frame_id: str, data: bytes, fmt: str = "jpeg"):
    """sensor_msgs/CompressedImage carrying `data` (the encoded file's bytes, unchanged)."""
    return _T[COMPRESSED_IMAGE](header=header(stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, np.uint8))


def camera_info(stamp_ns: int, frame_id: str, cam2img: np.ndarray, height: int, width: int):
    """sensor_msgs/CameraInfo of a rectified pinhole camera: K = cam2img (3, 3), P = [K | 0], R = I, D = 0."""
    k = np.asarray(cam2img, dtype=np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"{frame_id}: expected (3, 3) intrinsics, got {k.shape}")
    roi = _T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _T[CAMERA_INFO](
        header=header(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(-1).copy(),
        r=np.eye(3).reshape(-1),
        p=np.concatenate([k, np.zeros((3, 1))], axis=1).reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def point_cloud(stamp_ns: int, frame_id: str, points: np.ndarray):
    """(N,) little-endian structured array -> unorganized sensor_msgs/PointCloud2 (a byte copy of `points`)."""
    points = np.ascontiguousarray(points)
    if points.ndim != 1 or points.dtype.names is None:
        raise ValueError(f"{frame_id}: expected an (N,) structured array, got {points.shape} {points.dtype}")
    point_field = _T["sensor_msgs/msg/PointField"]
    fields = [
        point_field(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
        for f in dtype_to_fields(points.dtype)
    ]
    xyz = [points[n] for n in ("x", "y", "z") if n in points.dtype.names]
    dense = bool(all(np.isfinite(c).all() for c in xyz))
    return _T[POINT_CLOUD2](
        header=header(stamp_ns, frame_id),
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=points.dtype.itemsize,
        row_step=points.dtype.itemsize * len(points),
        data=points.view(np.uint8).reshape(-1),
        is_dense=dense,
    )


def _transform_parts(a2b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) -> translation (3,), quaternion (4,) x, y, z, w."""
    a2b = np.asarray(a2b, dtype=np.float64)
    if a2b.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) transform, got {a2b.shape}")
    return a2b[:3, 3], Rotation.from_matrix(a2b[:3, :3]).as_quat()


def _quaternion(q: np.ndarray):
    return _T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def _vector3(v: np.ndarray):
    return _T["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))


def odometry(
    stamp_ns: int,
    frame_id: str,
    child_frame_id: str,
    child2frame: np.ndarray,
    linear: np.ndarray,
    angular: np.ndarray,
):
    """nav_msgs/Odometry: pose = child2frame (4, 4); twist (m/s, rad/s) in the child frame, as REP 105 says."""
    t, q = _transform_parts(child2frame)
    pose = _T["geometry_msgs/msg/Pose"](
        position=_T["geometry_msgs/msg/Point"](x=float(t[0]), y=float(t[1]), z=float(t[2])), orientation=_quaternion(q)
    )
    twist = _T["geometry_msgs/msg/Twist"](linear=_vector3(linear), angular=_vector3(angular))
    return _T[ODOMETRY](
        header=header(stamp_ns, frame_id),
        child_frame_id=child_frame_id,
        pose=_T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=_T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
    )


def tf_message(stamp_ns: int, parent: str, children: dict[str, np.ndarray]):
    """tf2_msgs/TFMessage with one TransformStamped per child: parent -> child, value child2parent (4, 4)."""
    transforms = []
    for child, child2parent in children.items():
        t, q = _transform_parts(child2parent)
        transform = _T["geometry_msgs/msg/Transform"](translation=_vector3(t), rotation=_quaternion(q))
        transforms.append(
            _T["geometry_msgs/msg/TransformStamped"](
                header=header(stamp_ns, parent), child_frame_id=child, transform=transform
            )
        )
    return _T[TF_MESSAGE](transforms=transforms)


def serialize(msg) -> bytes:
    """CDR bytes (with the encapsulation header) of a rosbags message, as rosbag2 stores them."""
    return bytes(TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
