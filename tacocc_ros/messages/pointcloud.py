"""sensor_msgs/PointCloud2 <-> numpy structured arrays, and x/y/z/intensity extraction.

Reading is the project's one decoder, `tacocc_core.bags.cloud_layout` (the bag tools use it on `rosbags`
messages, the node here on rclpy messages): any field order, the eight PointField datatypes, either
endianness, padding inside a point and at row ends, organized or not, and the message is never written
to. `sensor_msgs_py.point_cloud2.read_points` is not used (that module says why). Writing is a plain
byte copy of a structured array, here too.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from tacocc_core.bags import cloud_layout
from tacocc_core.bags.cloud_layout import POINTFIELD_CODES, PointCloudError, check_cloud

__all__ = [
    "DATATYPES",
    "PointCloudError",
    "array_to_cloud",
    "check_cloud",
    "cloud_to_array",
    "cloud_to_points",
    "dtype_to_fields",
    "fields_to_dtype",
]

# PointField datatype constant -> numpy type code without byte order (one table for the node and the bags).
DATATYPES: dict[int, str] = POINTFIELD_CODES


def fields_to_dtype(
    fields: Sequence[PointField], point_step: int, is_bigendian: bool, source: str = "PointCloud2"
) -> np.dtype:
    """PointFields -> a structured numpy dtype whose itemsize is `point_step` (see cloud_layout.fields_to_dtype)."""
    return cloud_layout.fields_to_dtype(fields, point_step, is_bigendian, source)


def cloud_to_array(msg: PointCloud2, organized: bool = False, source: str = "PointCloud2") -> np.ndarray:
    """PointCloud2 -> (N,) or (height, width) structured array in the message's byte order, read-only.

    `source` names the cloud (topic) in errors; see `tacocc_core.bags.cloud_layout.decode_cloud`.
    """
    return cloud_layout.decode_cloud(msg, organized, source)


def cloud_to_points(
    msg: PointCloud2,
    extra_fields: Sequence[str] = ("intensity",),
    drop_nonfinite: bool = True,
    source: str = "PointCloud2",
) -> np.ndarray:
    """PointCloud2 -> (N, 3 + len(extra_fields)) float32 [x, y, z, *extra], in the cloud's frame.

    A missing x, y or z raises PointCloudError listing the fields present; a missing extra field
    (a cloud without intensity) reads as zeros. Points with a non-finite x/y/z (the gaps of an
    organized cloud) are dropped unless `drop_nonfinite` is False.
    """
    return cloud_layout.cloud_xyz_points(msg, extra_fields, drop_nonfinite, source)


def dtype_to_fields(dtype: np.dtype, source: str = "array") -> list[PointField]:
    """Structured dtype -> PointFields (offsets from the dtype; subarrays become `count`)."""
    layout = cloud_layout.dtype_to_fields(dtype, source)
    return [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in layout]


def array_to_cloud(points: np.ndarray, header: Header, is_dense: bool = False) -> PointCloud2:
    """Structured array (N,) or (height, width) -> PointCloud2 with the same fields and padding.

    All fields must share one byte order (native or not); the cloud's `is_bigendian` follows it.
    """
    points = np.asarray(points)
    if points.ndim not in (1, 2):
        raise PointCloudError(f"expected a (N,) or (height, width) structured array, got shape {points.shape}")
    fields = dtype_to_fields(points.dtype)
    layout: Mapping[str, Any] = points.dtype.fields or {}  # dtype_to_fields refused a dtype without fields
    orders = {_byte_order(layout[f.name][0].base) for f in fields}
    orders.discard("|")
    if len(orders) > 1:
        raise PointCloudError(f"fields mix byte orders {sorted(orders)}; use one")
    big = orders == {">"}
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(points).tobytes())
    return PointCloud2(
        header=header,
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=points.dtype.itemsize,
        row_step=points.dtype.itemsize * width,
        data=data,
        is_dense=is_dense,
    )


def _byte_order(dtype: np.dtype) -> str:
    if dtype.byteorder == "=":
        return "<" if sys.byteorder == "little" else ">"
    return dtype.byteorder
