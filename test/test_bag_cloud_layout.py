"""tacocc_core/bags/cloud_layout.py: ROS-free PointCloud2 layouts agree with the rclpy-side decoder."""

from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header

from tacocc_core.bags.cloud_layout import (
    LABEL_DTYPE,
    LIDAR_DTYPE,
    Field,
    dtype_to_fields,
    fields_to_dtype,
    label_points,
)
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
    with pytest.raises(ValueError, match="structured dtype"):
        dtype_to_fields(np.dtype("<f4"))
    with pytest.raises(ValueError, match="'c'.*PointField cannot carry"):
        dtype_to_fields(np.dtype([("c", "<c8")]))
    with pytest.raises(ValueError, match="'z' has unknown PointField datatype 9"):
        fields_to_dtype([Field("z", 0, 9)], 4)
    with pytest.raises(ValueError, match="'y' at offset 4 runs past point_step 6"):
        fields_to_dtype([Field("x", 0, 7), Field("y", 4, 7)], 6)
    with pytest.raises(ValueError, match=r"\(2, 3\) centres for 2 labels"):
        label_points(np.zeros(2, np.uint8), np.zeros((3, 3)))
