"""sensor_msgs/PointCloud2 <-> numpy structured arrays, and x/y/z/intensity extraction.

Reading takes any field order, the eight PointField datatypes, either endianness, padding inside a point
(`point_step` larger than the fields) and at row ends (`row_step` larger than `width * point_step`),
and organized (height > 1) or unorganized clouds. The message is checked first (missing x/y/z, fields
that overlap or run past `point_step`, data shorter than the header promises) so that a bad cloud fails
with a `PointCloudError` naming the field and the numbers, whichever decoder runs.

Decoding uses `sensor_msgs_py.point_cloud2.read_points` where it is importable (a ROS 2 install) and the
numpy view below otherwise (and for fields with count > 1, which sensor_msgs_py names differently
between distributions); writing is always the numpy path here, because `create_cloud`'s handling of
numpy input differs between ROS distributions and the writer is a plain byte copy.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from tacocc_core.bags.cloud_layout import POINTFIELD_CODES
from tacocc_core.bags.cloud_layout import dtype_to_fields as layout_fields

try:  # a ROS 2 install; not on PyPI
    from sensor_msgs_py import point_cloud2 as _ros_point_cloud2
except ImportError:
    _ros_point_cloud2 = None

# PointField datatype constant -> numpy type code without byte order (one table for the node and the bags).
DATATYPES: dict[int, str] = POINTFIELD_CODES


class PointCloudError(ValueError):
    """A PointCloud2 whose layout or data cannot be read."""


def have_sensor_msgs_py() -> bool:
    """True where `sensor_msgs_py` (ROS 2 install) is importable and decodes clouds."""
    return _ros_point_cloud2 is not None


def fields_to_dtype(
    fields: Sequence[PointField], point_step: int, is_bigendian: bool, source: str = "PointCloud2"
) -> np.dtype:
    """PointFields -> a structured numpy dtype whose itemsize is `point_step` (padding kept as gaps).

    A field with `count > 1` becomes a subarray of that length. Raises PointCloudError for an unknown
    datatype, a zero count, a duplicate name, overlapping fields, or a field that ends past `point_step`.
    """
    order = ">" if is_bigendian else "<"
    names, formats, offsets, spans = [], [], [], []
    for f in fields:
        if f.datatype not in DATATYPES:
            raise PointCloudError(f"{source}: field {f.name!r} has unknown datatype {f.datatype}; known 1..8")
        if f.count < 1:
            raise PointCloudError(f"{source}: field {f.name!r} has count {f.count}; expected >= 1")
        if f.name in names:
            raise PointCloudError(f"{source}: field {f.name!r} appears twice")
        code = order + DATATYPES[f.datatype]
        size = np.dtype(code).itemsize * f.count
        if f.offset + size > point_step:
            raise PointCloudError(
                f"{source}: field {f.name!r} (offset {f.offset}, {size} bytes) ends at byte {f.offset + size}, "
                f"past point_step {point_step}"
            )
        names.append(f.name)
        formats.append(code if f.count == 1 else (code, (f.count,)))
        offsets.append(f.offset)
        spans.append((f.offset, f.offset + size, f.name))
    spans.sort()
    for (_, end_a, name_a), (start_b, _, name_b) in zip(spans, spans[1:], strict=False):
        if start_b < end_a:
            raise PointCloudError(f"{source}: fields {name_a!r} and {name_b!r} overlap (byte {start_b})")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


def check_cloud(msg: PointCloud2, source: str = "PointCloud2") -> np.dtype:
    """Validate the layout of a cloud against its data; return its point dtype."""
    if msg.point_step == 0 and msg.width * msg.height > 0:
        raise PointCloudError(f"{source}: point_step is 0 for {msg.width * msg.height} points")
    dtype = fields_to_dtype(msg.fields, msg.point_step, msg.is_bigendian, source)
    row_bytes = msg.width * msg.point_step
    if msg.height > 0 and msg.row_step < row_bytes:
        raise PointCloudError(
            f"{source}: row_step {msg.row_step} is smaller than width {msg.width} x point_step {msg.point_step}"
        )
    needed = (msg.height - 1) * msg.row_step + row_bytes if msg.height > 0 else 0
    if len(msg.data) < needed:
        raise PointCloudError(
            f"{source}: data holds {len(msg.data)} bytes, the header needs {needed} "
            f"(height {msg.height} x row_step {msg.row_step}); truncated cloud"
        )
    return dtype


def _read_numpy(msg: PointCloud2, dtype: np.dtype) -> np.ndarray:
    """(height * width,) structured array viewing the message bytes, row padding removed (a copy only then)."""
    height, width, step = msg.height, msg.width, msg.point_step
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if height == 0 or width == 0:
        return np.zeros(0, dtype=dtype)
    if msg.row_step == width * step:
        return raw[: height * width * step].view(dtype)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(height, width * step), strides=(msg.row_step, 1))
    return np.ascontiguousarray(rows).reshape(-1).view(dtype)


def cloud_to_array(msg: PointCloud2, organized: bool = False, source: str = "PointCloud2") -> np.ndarray:
    """PointCloud2 -> structured array, one named field per PointField, in the message's byte order.

    Args:
        msg: the cloud.
        organized: return (height, width) instead of (height * width,).
        source: names the cloud (topic) in errors.

    Returns:
        (N,) or (height, width) structured array; read-only when it views the message buffer.
    """
    dtype = check_cloud(msg, source)
    if _ros_point_cloud2 is not None and all(f.count == 1 for f in msg.fields):
        points = np.asarray(_ros_point_cloud2.read_points(msg, skip_nans=False)).reshape(-1)
    else:
        points = _read_numpy(msg, dtype)
    return points.reshape(msg.height, msg.width) if organized else points


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
    points = cloud_to_array(msg, source=source)
    names = points.dtype.names or ()
    missing = [n for n in ("x", "y", "z") if n not in names]
    if missing:
        raise PointCloudError(f"{source}: no field {'/'.join(missing)}; the cloud has fields {list(names)}")
    out = np.zeros((len(points), 3 + len(extra_fields)), dtype=np.float32)
    for column, name in enumerate(("x", "y", "z", *extra_fields)):
        if name in names:
            values = points[name]
            out[:, column] = values if values.ndim == 1 else values[:, 0]
    if drop_nonfinite:
        out = out[np.isfinite(out[:, :3]).all(axis=1)]
    return out


def dtype_to_fields(dtype: np.dtype, source: str = "array") -> list[PointField]:
    """Structured dtype -> PointFields (offsets from the dtype; subarrays become `count`)."""
    if dtype.names is None:
        raise PointCloudError(f"{source}: expected a structured array with named fields, got dtype {dtype}")
    try:
        layout = layout_fields(dtype)
    except ValueError as err:
        raise PointCloudError(f"{source}: {err}") from None
    return [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in layout]


def array_to_cloud(points: np.ndarray, header: Header, is_dense: bool = False) -> PointCloud2:
    """Structured array (N,) or (height, width) -> PointCloud2 with the same fields and padding.

    All fields must share one byte order (native or not); the cloud's `is_bigendian` follows it.
    """
    points = np.asarray(points)
    if points.ndim not in (1, 2):
        raise PointCloudError(f"expected a (N,) or (height, width) structured array, got shape {points.shape}")
    fields = dtype_to_fields(points.dtype)
    orders = {_byte_order(points.dtype.fields[n][0].base) for n in points.dtype.names}
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
