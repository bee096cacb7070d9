"""tacocc_core/bags/cloud_layout.py: ROS-free PointCloud2 layouts agree with the rclpy-side decoder."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from tacocc_core.bags.cloud_layout import (
    LABEL_DTYPE,
    LIDAR_DTYPE,
    Field,
    cloud_xyz_points,
    decode_cloud,
    dtype_to_fields,
    fields_to_dtype,
    label_points,
)
from tacocc_core.bags.messages import POINT_CLOUD2, TYPESTORE
from tacocc_ros.messages import pointcloud as reference

DTYPES = {
    "lidar": LIDAR_DTYPE,
    "labels": LABEL_DTYPE,
    "all_types": np.dtype(
        [(f"f{i}", c) for i, c in enumerate(["<i1", "<u1", "<i2", "<u2", "<i4", "<u4", "<f4", "<f8"])]
    ),
    "padded_subarray": np.dtype(
        {"names": ["x", "rgb"], "formats": ["<f4", ("<u1", (3,))], "offsets": [4, 8], "itemsize": 16}
    ),
}


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_fields_match_the_rclpy_converter(name):
    dtype = DTYPES[name]
    ours = dtype_to_fields(dtype)
    theirs = reference.dtype_to_fields(dtype)
    assert ours == [Field(f.name, f.offset, f.datatype, f.count) for f in theirs]
    assert fields_to_dtype(ours, dtype.itemsize) == reference.fields_to_dtype(theirs, dtype.itemsize, False)
    assert fields_to_dtype(ours, dtype.itemsize) == dtype


def test_label_points_read_back_through_the_rclpy_converter():
    labels = np.array([4, 255, 16], dtype=np.uint8)
    centres = np.array([[0.25, -0.25, 1.75], [49.75, 49.75, -4.75], [-10.0, 3.0, 0.0]])
    points = label_points(labels, centres)
    assert points.dtype.itemsize == 16
    cloud = reference.array_to_cloud(points, Header(frame_id="LIDAR_TOP"))
    back = reference.cloud_to_array(cloud)
    np.testing.assert_array_equal(back["label"], labels)
    np.testing.assert_allclose(np.stack([back["x"], back["y"], back["z"]], axis=1), centres, atol=1e-6)


def test_bad_layouts_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="structured array"):
        dtype_to_fields(np.dtype("<f4"))
    with pytest.raises(ValueError, match="'c'.*PointField cannot carry"):
        dtype_to_fields(np.dtype([("c", "<c8")]))
    with pytest.raises(ValueError, match="field 'z' has unknown datatype 9"):
        fields_to_dtype([Field("z", 0, 9)], 4)
    with pytest.raises(ValueError, match=r"'y' \(offset 4, 4 bytes\) ends at byte 8, past point_step 6"):
        fields_to_dtype([Field("x", 0, 7), Field("y", 4, 7)], 6)
    with pytest.raises(ValueError, match=r"\(2, 3\) centres for 2 labels"):
        label_points(np.zeros(2, np.uint8), np.zeros((3, 3)))


def test_one_decoder_reads_rclpy_and_rosbags_messages_alike():
    """A big-endian organized cloud with row padding, as rclpy gets it and as a bag stores it."""
    dtype = np.dtype(
        {"names": ["intensity", "x", "y", "z"], "formats": [">f4"] * 4, "offsets": [12, 0, 4, 8], "itemsize": 20}
    )
    rows = np.zeros((3, 4), dtype=dtype)
    for name in ("x", "y", "z", "intensity"):
        rows[name] = np.random.default_rng(len(name)).normal(0, 10, (3, 4))
    row_step = 4 * 20 + 7
    data = bytearray(b"\xee" * (row_step * 3))
    for r in range(3):
        data[r * row_step : r * row_step + 80] = rows[r].tobytes()
    fields = [
        PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in dtype_to_fields(dtype)
    ]
    msg = PointCloud2(
        height=3, width=4, fields=fields, is_bigendian=True, point_step=20, row_step=row_step, data=bytes(data)
    )
    stored = TYPESTORE.deserialize_cdr(serialize_message(msg), POINT_CLOUD2)  # the rosbags dataclass
    for cloud in (msg, stored):
        got = decode_cloud(cloud, organized=True, source="test")
        np.testing.assert_array_equal(got, rows)
        xyzi = cloud_xyz_points(cloud)
        expected = np.stack([rows[n].reshape(-1) for n in ("x", "y", "z", "intensity")], axis=1).astype(np.float32)
        np.testing.assert_array_equal(xyzi, expected)
    assert bytes(stored.data) == bytes(data)
