"""tacocc_ros.messages.pointcloud: PointCloud2 <-> numpy, checked against byte layouts packed by hand with struct."""

import ast
import struct
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField

from tacocc_ros.messages.pointcloud import (
    PointCloudError,
    array_to_cloud,
    cloud_to_array,
    cloud_to_points,
    fields_to_dtype,
)
from tacocc_ros.messages.stamps import make_header

F = PointField
STRUCT_CODES = {F.INT8: "b", F.UINT8: "B", F.INT16: "h", F.UINT16: "H", F.INT32: "i", F.UINT32: "I"}
STRUCT_CODES |= {F.FLOAT32: "f", F.FLOAT64: "d"}


def pack_cloud(layout, values, point_step, big=False, height=1, row_pad=0):
    """Pack `values` (list of dicts name -> value or list) point by point with struct, as a driver would."""
    order = ">" if big else "<"
    n = len(values)
    width = n // height
    row_step = width * point_step + row_pad
    data = bytearray(b"\xab" * (row_step * height))  # padding bytes are garbage, not zeros
    for i, point in enumerate(values):
        base = (i // width) * row_step + (i % width) * point_step
        for name, offset, datatype, count in layout:
            vals = point[name] if count > 1 else [point[name]]
            struct.pack_into(f"{order}{count}{STRUCT_CODES[datatype]}", data, base + offset, *vals)
    fields = [F(name=name, offset=o, datatype=d, count=c) for name, o, d, c in layout]
    return PointCloud2(
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=point_step,
        row_step=row_step,
        data=bytes(data),
        is_dense=True,
    )


XYZI = [("x", 0, F.FLOAT32, 1), ("y", 4, F.FLOAT32, 1), ("z", 8, F.FLOAT32, 1), ("intensity", 12, F.FLOAT32, 1)]
# Ouster-like: fields out of order, mixed types, padding inside the point.
SHUFFLED = [
    ("t", 20, F.UINT32, 1),
    ("z", 8, F.FLOAT32, 1),
    ("intensity", 16, F.FLOAT32, 1),
    ("x", 0, F.FLOAT32, 1),
    ("y", 4, F.FLOAT32, 1),
    ("ring", 26, F.UINT16, 1),
    ("reflectivity", 24, F.UINT16, 1),
]
ALL_TYPES = [
    ("a", 0, F.INT8, 1),
    ("b", 1, F.UINT8, 1),
    ("c", 2, F.INT16, 1),
    ("d", 4, F.UINT16, 1),
    ("e", 8, F.INT32, 1),
    ("f", 12, F.UINT32, 1),
    ("x", 16, F.FLOAT32, 1),
    ("y", 24, F.FLOAT64, 1),
    ("z", 32, F.FLOAT32, 1),
    ("v", 36, F.FLOAT32, 3),
]
RANGES = {F.INT8: (-128, 127), F.UINT8: (0, 255), F.INT16: (-32768, 32767), F.UINT16: (0, 65535)}
RANGES |= {F.INT32: (-(2**31), 2**31 - 1), F.UINT32: (0, 2**32 - 1)}


def random_values(layout, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        point = {}
        for name, _, datatype, count in layout:
            if datatype in RANGES:
                lo, hi = RANGES[datatype]
                vals = [int(v) for v in rng.integers(lo, hi, size=count, endpoint=True)]
            else:
                vals = [float(np.float32(v)) for v in rng.normal(0, 30, size=count)]
            point[name] = vals if count > 1 else vals[0]
        out.append(point)
    return out


CASES = {
    "xyzi": (XYZI, 16, False, 1, 0),
    "xyzi_padded_point": (XYZI, 32, False, 1, 0),
    "shuffled_mixed": (SHUFFLED, 28, False, 1, 0),
    "big_endian": (SHUFFLED, 32, True, 1, 0),
    "all_datatypes": (ALL_TYPES, 48, False, 1, 0),
    "all_datatypes_big": (ALL_TYPES, 48, True, 1, 0),
    "organized_row_padding": (XYZI, 16, False, 3, 8),
    "organized_row_padding_big_shuffled": (SHUFFLED, 32, True, 4, 12),
    "organized_row_padding_subarray": (ALL_TYPES, 48, True, 2, 5),
}


@pytest.mark.parametrize("case", CASES)
def test_read_matches_hand_packed_bytes(case):
    layout, step, big, height, row_pad = CASES[case]
    values = random_values(layout, 12)
    msg = pack_cloud(layout, values, step, big=big, height=height, row_pad=row_pad)
    points = cloud_to_array(msg)
    assert points.shape == (12,)
    assert points.dtype.itemsize == step
    for name, _, _, count in layout:
        expected = np.array([p[name] for p in values])
        got = points[name]
        assert got.shape == ((12,) if count == 1 else (12, count))
        np.testing.assert_array_equal(got.astype(expected.dtype), expected, err_msg=name)
    assert cloud_to_array(msg, organized=True).shape == (height, 12 // height)


@pytest.mark.parametrize("case", CASES)
def test_write_then_read_back_bytes_and_values(case):
    layout, step, big, height, row_pad = CASES[case]
    values = random_values(layout, 12, seed=1)
    msg = pack_cloud(layout, values, step, big=big, height=height, row_pad=0)
    points = cloud_to_array(msg, organized=True)
    back = array_to_cloud(points, make_header(5, "lidar"))
    assert (back.height, back.width, back.point_step, bool(back.is_bigendian)) == (height, 12 // height, step, big)
    assert back.row_step == step * back.width
    assert [(f.name, f.offset, f.datatype, f.count) for f in back.fields] == [tuple(x) for x in layout]
    assert bytes(back.data) == bytes(msg.data)  # same layout, same bytes (padding included)
    np.testing.assert_array_equal(cloud_to_array(back), cloud_to_array(msg))


def test_cloud_to_points_takes_xyz_intensity_and_drops_nan_gaps():
    values = random_values(XYZI, 6, seed=2)
    values[2]["x"] = float("nan")
    msg = pack_cloud(XYZI, values, 16, height=2)
    pts = cloud_to_points(msg)
    assert pts.dtype == np.float32 and pts.shape == (5, 4)
    keep = [v for i, v in enumerate(values) if i != 2]
    np.testing.assert_array_equal(pts, np.array([[v["x"], v["y"], v["z"], v["intensity"]] for v in keep], np.float32))
    assert cloud_to_points(msg, drop_nonfinite=False).shape == (6, 4)


def test_cloud_without_intensity_reads_zeros_and_float64_xyz_is_converted():
    layout = [("z", 0, F.FLOAT64, 1), ("y", 8, F.FLOAT64, 1), ("x", 16, F.FLOAT64, 1)]
    values = [{"x": 1.5, "y": -2.25, "z": 3.0}, {"x": 4.0, "y": 5.0, "z": -6.5}]
    pts = cloud_to_points(pack_cloud(layout, values, 24, big=True))
    np.testing.assert_array_equal(pts, [[1.5, -2.25, 3.0, 0.0], [4.0, 5.0, -6.5, 0.0]])


def test_missing_xyz_is_named_with_the_fields_present():
    msg = pack_cloud([("x", 0, F.FLOAT32, 1), ("y", 4, F.FLOAT32, 1)], [{"x": 1.0, "y": 2.0}], 8)
    with pytest.raises(PointCloudError, match=r"/LIDAR_TOP: no field z; the cloud has fields \['x', 'y'\]"):
        cloud_to_points(msg, source="/LIDAR_TOP")


def test_point_step_smaller_than_fields():
    msg = pack_cloud(XYZI, random_values(XYZI, 2), 16)
    msg.point_step = 12
    with pytest.raises(
        PointCloudError, match=r"'intensity' \(offset 12, 4 bytes\) ends at byte 16, past point_step 12"
    ):
        cloud_to_array(msg)


def test_truncated_data():
    msg = pack_cloud(XYZI, random_values(XYZI, 4), 16, height=2, row_pad=4)
    msg.data = bytes(msg.data)[:-5]
    with pytest.raises(PointCloudError, match=r"data holds 67 bytes, the header needs 68 .*truncated"):
        cloud_to_array(msg, source="/LIDAR_TOP")


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda m: setattr(m.fields[1], "datatype", 9), r"field 'y' has unknown datatype 9"),
        (lambda m: setattr(m.fields[1], "offset", 2), r"fields 'x' and 'y' overlap"),
        (lambda m: setattr(m.fields[1], "name", "x"), r"field 'x' appears twice"),
        (lambda m: setattr(m.fields[0], "count", 0), r"field 'x' has count 0"),
        (lambda m: setattr(m, "row_step", 8), r"row_step 8 is smaller than width 2 x point_step 16"),
    ],
)
def test_bad_layouts_are_rejected(mutate, pattern):
    msg = pack_cloud(XYZI, random_values(XYZI, 2), 16)
    mutate(msg)
    with pytest.raises(PointCloudError, match=pattern):
        cloud_to_array(msg)


def test_empty_cloud_reads_as_empty():
    msg = PointCloud2(
        height=1,
        width=0,
        fields=[F(name=n, offset=4 * i, datatype=F.FLOAT32, count=1) for i, n in enumerate("xyz")],
        point_step=12,
        row_step=0,
    )
    assert cloud_to_points(msg).shape == (0, 4)


def test_array_to_cloud_rejects_unsupported_and_mixed_byte_orders():
    with pytest.raises(PointCloudError, match="field 'x' has dtype int64"):
        array_to_cloud(np.zeros(3, dtype=[("x", "<i8")]), make_header(0, "l"))
    with pytest.raises(PointCloudError, match="mix byte orders"):
        array_to_cloud(np.zeros(3, dtype=[("x", "<f4"), ("y", ">f4")]), make_header(0, "l"))
    with pytest.raises(PointCloudError, match="structured array"):
        array_to_cloud(np.zeros(3, dtype=np.float32), make_header(0, "l"))


def test_fields_to_dtype_keeps_point_step_as_itemsize():
    dtype = fields_to_dtype([F(name="x", offset=4, datatype=F.FLOAT32, count=1)], 32, False)
    assert dtype.itemsize == 32 and dtype.fields["x"][1] == 4


@pytest.mark.parametrize("case", CASES)
def test_reading_never_writes_to_the_message(case):
    layout, step, big, height, row_pad = CASES[case]
    msg = pack_cloud(layout, random_values(layout, 12, seed=3), step, big=big, height=height, row_pad=row_pad)
    msg.data = bytearray(msg.data)  # a writable buffer, as rclpy's array.array is
    before = bytes(msg.data)
    points = cloud_to_array(msg)
    cloud_to_points(msg, drop_nonfinite=False)
    assert bytes(msg.data) == before
    with pytest.raises(ValueError, match="read-only"):
        points[layout[0][0]] = 0


def test_row_padding_bytes_never_become_points():
    """The padding at each row end holds 0xab garbage; reading it as a point would give ~-3e-12 values."""
    values = [{"x": float(i), "y": 10.0 + i, "z": -float(i), "intensity": 0.5} for i in range(6)]
    msg = pack_cloud(XYZI, values, 16, big=True, height=3, row_pad=16)  # one whole padding "point" per row
    np.testing.assert_array_equal(cloud_to_points(msg)[:, 0], np.arange(6, dtype=np.float32))
    assert cloud_to_array(msg, organized=True)["y"].tolist() == [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0]]


def test_no_module_decodes_through_sensor_msgs_py():
    """One decoder: sensor_msgs_py.read_points ignores row_step and byteswaps big-endian data in place."""
    repo = Path(__file__).resolve().parents[2]
    for folder in ("tacocc_core", "tacocc_ros", "benchmarks"):
        for path in (repo / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                assert not any(n.startswith("sensor_msgs_py") for n in names), f"{path} imports {names}"
