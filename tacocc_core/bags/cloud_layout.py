"""PointCloud2 byte layouts and decoding as plain numpy: the one decoder of the project, without ROS.

Works on any object with the PointCloud2 attributes (`height`, `width`, `fields`, `is_bigendian`,
`point_step`, `row_step`, `data`): an rclpy message on the node, a `rosbags` message read from a bag.
Each field needs `name`, `offset`, `datatype` (the sensor_msgs/PointField constants INT8 = 1 ...
FLOAT64 = 8) and `count`.

Reading takes any field order, the eight datatypes, either endianness, padding inside a point
(`point_step` larger than the fields: a structured dtype's itemsize is the cloud's `point_step`, gaps are
padding) and at row ends (`row_step` larger than `width * point_step`), organized (height > 1) or
unorganized clouds, and fields with `count > 1` (subarrays). It never writes to the message: the array
returned is a read-only view of the message's bytes, or a copy when rows carry padding. The layout is
checked first (missing x/y/z, fields that overlap or run past `point_step`, data shorter than the
header promises) and a bad cloud raises `PointCloudError` naming the source, the field and the numbers.

Why not `sensor_msgs_py.point_cloud2.read_points` (a ROS 2 install only): it builds its dtype without
`point_step` as itemsize and ignores `row_step`, so padded points and organized clouds with row padding
come back as wrong points, and on a little-endian machine it byteswaps a big-endian message's buffer
in place (`byteswap(inplace=True)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

# sensor_msgs/PointField datatype constant -> numpy type code without byte order.
POINTFIELD_CODES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
_CODE_TO_DATATYPE = {code: datatype for datatype, code in POINTFIELD_CODES.items()}
# The largest itemsize a numpy dtype takes (a C int); a point this large is a corrupt header, not a sensor.
MAX_POINT_STEP = 2**31 - 1

# nuScenes `.pcd.bin` points: 5 x float32 [x, y, z, intensity, ring], 20 bytes; the bytes go into the cloud as is.
LIDAR_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])
# Labelled voxel centres (metres, LiDAR frame) + label (1..16 classes, 255 ignore), padded to 16 bytes.
LABEL_DTYPE = np.dtype({"names": ["x", "y", "z", "label"], "formats": ["<f4", "<f4", "<f4", "u1"], "itemsize": 16})


class PointCloudError(ValueError):
    """A PointCloud2 whose layout or data cannot be read (the message names the source and the field)."""


class Field(NamedTuple):
    """One sensor_msgs/PointField: `datatype` is the PointField constant (7 = FLOAT32)."""

    name: str
    offset: int
    datatype: int
    count: int = 1  # type: ignore[assignment]  # PointField's name; shadows tuple.count, which nothing calls


def dtype_to_fields(dtype: np.dtype, source: str = "array") -> list[Field]:
    """Structured dtype -> Fields in dtype order (offsets from the dtype; a subarray becomes `count`)."""
    layout = dtype.fields
    if dtype.names is None or layout is None:
        raise PointCloudError(f"{source}: expected a structured array with named fields, got dtype {dtype}")
    fields = []
    for name in dtype.names:
        field_dtype, offset = layout[name][:2]
        base, count = (field_dtype.base, int(np.prod(field_dtype.shape))) if field_dtype.shape else (field_dtype, 1)
        code = f"{base.kind}{base.itemsize}"
        if code not in _CODE_TO_DATATYPE:
            raise PointCloudError(f"{source}: field {name!r} has dtype {base}, which a PointField cannot carry")
        fields.append(Field(name, int(offset), _CODE_TO_DATATYPE[code], count))
    return fields


def fields_to_dtype(
    fields: Sequence[Any], point_step: int, is_bigendian: bool = False, source: str = "PointCloud2"
) -> np.dtype:
    """PointFields -> a structured numpy dtype whose itemsize is `point_step` (padding kept as gaps).

    `fields`: anything with `name`, `offset`, `datatype`, `count` (Field, rclpy or rosbags PointField).
    A field with `count > 1` becomes a subarray of that length. Raises PointCloudError for an unknown
    datatype, a zero count, a duplicate name, overlapping fields, a field that ends past `point_step`, or
    a `point_step` past MAX_POINT_STEP.
    """
    if point_step > MAX_POINT_STEP:
        raise PointCloudError(f"{source}: point_step {point_step} is larger than {MAX_POINT_STEP} bytes")
    order = ">" if is_bigendian else "<"
    names, formats, offsets, spans = [], [], [], []
    for f in fields:
        if f.datatype not in POINTFIELD_CODES:
            raise PointCloudError(f"{source}: field {f.name!r} has unknown datatype {f.datatype}; known 1..8")
        if f.count < 1:
            raise PointCloudError(f"{source}: field {f.name!r} has count {f.count}; expected >= 1")
        if f.name in names:
            raise PointCloudError(f"{source}: field {f.name!r} appears twice")
        code = order + POINTFIELD_CODES[f.datatype]
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


def check_cloud(cloud: Any, source: str = "PointCloud2") -> np.dtype:
    """Validate the layout of a cloud (any PointCloud2-shaped object) against its data; its point dtype."""
    if cloud.point_step == 0 and cloud.width * cloud.height > 0:
        raise PointCloudError(f"{source}: point_step is 0 for {cloud.width * cloud.height} points")
    dtype = fields_to_dtype(cloud.fields, cloud.point_step, bool(cloud.is_bigendian), source)
    row_bytes = cloud.width * cloud.point_step
    if cloud.height > 0 and cloud.row_step < row_bytes:
        raise PointCloudError(
            f"{source}: row_step {cloud.row_step} is smaller than width {cloud.width} x point_step {cloud.point_step}"
        )
    needed = (cloud.height - 1) * cloud.row_step + row_bytes if cloud.height > 0 else 0
    if len(cloud.data) < needed:
        raise PointCloudError(
            f"{source}: data holds {len(cloud.data)} bytes, the header needs {needed} "
            f"(height {cloud.height} x row_step {cloud.row_step}); truncated cloud"
        )
    return dtype


def decode_cloud(cloud: Any, organized: bool = False, source: str = "PointCloud2") -> np.ndarray:
    """PointCloud2 -> structured array, one named field per PointField, in the message's byte order.

    Args:
        cloud: an rclpy or rosbags PointCloud2 (or anything with its attributes); never written to.
        organized: return (height, width) instead of (height * width,).
        source: names the cloud (topic, bag) in errors.

    Returns:
        (N,) or (height, width) structured array of itemsize `point_step`: a read-only view of the
        message's bytes, or a copy with the row padding left out when `row_step > width * point_step`.
    """
    dtype = check_cloud(cloud, source)
    height, width, step = cloud.height, cloud.width, cloud.point_step
    if height == 0 or width == 0:
        points = np.zeros(0, dtype=dtype)
    else:
        raw = np.frombuffer(cloud.data, dtype=np.uint8)
        if cloud.row_step == width * step:
            points = raw[: height * width * step].view(dtype)
        else:
            rows = np.lib.stride_tricks.as_strided(raw, shape=(height, width * step), strides=(cloud.row_step, 1))
            points = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    points.flags.writeable = False  # a view of a writable buffer (rclpy's array.array) stays read-only
    return points.reshape(height, width) if organized else points


def cloud_xyz_points(
    cloud: Any,
    extra_fields: Sequence[str] = ("intensity",),
    drop_nonfinite: bool = True,
    source: str = "PointCloud2",
) -> np.ndarray:
    """PointCloud2 -> (N, 3 + len(extra_fields)) float32 [x, y, z, *extra], in the cloud's frame.

    A missing x, y or z raises PointCloudError listing the fields present; a missing extra field
    (a cloud without intensity) reads as zeros; the first element of a field with count > 1 is taken.
    Points with a non-finite x/y/z (the gaps of an organized cloud) are dropped unless `drop_nonfinite`
    is False.
    """
    points = decode_cloud(cloud, source=source)
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


def label_points(labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Voxel centres + labels -> (M,) LABEL_DTYPE records.

    Args:
        labels: (M,) uint8 labels.
        centres: (M, 3) float centres, metres, LiDAR frame.
    """
    labels, centres = np.asarray(labels), np.asarray(centres)
    if centres.shape != (len(labels), 3):
        raise ValueError(f"expected ({len(labels)}, 3) centres for {len(labels)} labels, got {centres.shape}")
    out = np.zeros(len(labels), dtype=LABEL_DTYPE)
    out["x"], out["y"], out["z"] = centres[:, 0], centres[:, 1], centres[:, 2]
    out["label"] = labels
    return out
