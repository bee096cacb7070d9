"""PointCloud2 byte layouts as plain numpy: structured dtypes <-> (name, offset, datatype, count) fields.

The same semantics as `tacocc_ros/messages/pointcloud.py` (which works on rclpy messages), without any ROS import:
the datatype codes are the constants of sensor_msgs/PointField (INT8 = 1 ... FLOAT64 = 8), a structured
dtype's itemsize is the cloud's `point_step` (gaps are padding), and a subarray field is a field with
`count > 1`. The bag writer builds `/LIDAR_TOP` and `/occupancy/gt` clouds with these helpers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# sensor_msgs/PointField datatype constant -> numpy type code without byte order.
POINTFIELD_CODES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
_CODE_TO_DATATYPE = {code: datatype for datatype, code in POINTFIELD_CODES.items()}

# nuScenes `.pcd.bin` points: 5 x float32 [x, y, z, intensity, ring], 20 bytes; the bytes go into the cloud as is.
LIDAR_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])
# Labelled voxel centres (metres, LiDAR frame) + label (1..16 classes, 255 ignore), padded to 16 bytes.
LABEL_DTYPE = np.dtype({"names": ["x", "y", "z", "label"], "formats": ["<f4", "<f4", "<f4", "u1"], "itemsize": 16})


class Field(NamedTuple):
    """One sensor_msgs/PointField: `datatype` is the PointField constant (7 = FLOAT32)."""

    name: str
    offset: int
    datatype: int
    count: int = 1


def dtype_to_fields(dtype: np.dtype) -> list[Field]:
    """Structured dtype -> Fields in dtype order (offsets from the dtype; a subarray becomes `count`)."""
    if dtype.names is None:
        raise ValueError(f"expected a structured dtype with named fields, got {dtype}")
    fields = []
    for name in dtype.names:
        field_dtype, offset = dtype.fields[name][:2]
        base, count = (field_dtype.base, int(np.prod(field_dtype.shape))) if field_dtype.shape else (field_dtype, 1)
        code = f"{base.kind}{base.itemsize}"
        if code not in _CODE_TO_DATATYPE:
            raise ValueError(f"field {name!r} has dtype {base}, which a PointField cannot carry")
        fields.append(Field(name, int(offset), _CODE_TO_DATATYPE[code], count))
    return fields


def fields_to_dtype(fields: list[Field], point_step: int, is_bigendian: bool = False) -> np.dtype:
    """Fields -> structured dtype of itemsize `point_step`; unknown datatypes and overruns raise ValueError."""
    order = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        if f.datatype not in POINTFIELD_CODES:
            raise ValueError(f"field {f.name!r} has unknown PointField datatype {f.datatype}; known 1..8")
        if f.count < 1:
            raise ValueError(f"field {f.name!r} has count {f.count}; expected >= 1")
        code = order + POINTFIELD_CODES[f.datatype]
        if f.offset + np.dtype(code).itemsize * f.count > point_step:
            raise ValueError(f"field {f.name!r} at offset {f.offset} runs past point_step {point_step}")
        names.append(f.name)
        formats.append(code if f.count == 1 else (code, (f.count,)))
        offsets.append(f.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


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
