"""Generated PointCloud2 messages against tacocc_ros/messages/pointcloud.py (the node's LiDAR boundary).

Well-formed clouds (any field order and datatypes, counts, padding inside points and at row ends, either
endianness, organized or not, NaN/Inf values, is_dense true or lying) decode to what a plain `struct`
re-computation of the bytes says. Each malformed cloud breaks one thing of a well-formed one (a datatype,
a count, an offset, point_step, row_step, the data length, a duplicate or missing field, a huge
width x height) and must raise PointCloudError naming that field or number; no other exception, and no
allocation larger than the message's own bytes (measured with tracemalloc).
"""

from __future__ import annotations

import struct
import tracemalloc

import fuzz_tally
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sensor_msgs.msg import PointCloud2, PointField

from tacocc_ros.messages.pointcloud import PointCloudError, cloud_to_array, cloud_to_points

BOUNDARY = "PointCloud2"
STRUCT_CODES = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 8: "d"}
SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}
U32 = 2**32 - 1
MEMORY_SLACK = 1 << 20  # bytes a decode may allocate beyond the size of the message's data


@st.composite
def good_clouds(draw) -> PointCloud2:
    """A well-formed cloud: x, y, z + 0-3 other fields, shuffled, with gaps, any datatypes and endianness."""
    extra = draw(st.lists(st.sampled_from(["intensity", "ring", "t", "rgb", "ambient"]), unique=True, max_size=3))
    names = draw(st.permutations(["x", "y", "z", *extra]))
    fields, offset = [], 0
    for name in names:
        offset += draw(st.integers(0, 3))  # padding before the field
        datatype = draw(st.sampled_from([7, 7, 8] if name in "xyz" else list(SIZES)))
        count = 1 if name in "xyz" else draw(st.integers(1, 3))
        fields.append(PointField(name=name, offset=offset, datatype=datatype, count=count))
        offset += SIZES[datatype] * count
    point_step = offset + draw(st.integers(0, 5))
    height, width = draw(st.integers(1, 4)), draw(st.integers(0, 12))
    row_step = width * point_step + draw(st.sampled_from([0, 0, 1, 7]))
    needed = (height - 1) * row_step + width * point_step
    big = draw(st.booleans())
    data = bytearray(draw(st.binary(min_size=needed, max_size=needed)))
    # Put real floats (NaN, Inf included) into x/y/z so the comparison sees values, not only random bits.
    values = iter(draw(st.lists(st.floats(width=32), min_size=3 * height * width, max_size=3 * height * width)))
    for r in range(height):
        for c in range(width):
            for f in fields:
                if f.name in "xyz":
                    code = (">" if big else "<") + STRUCT_CODES[f.datatype]
                    struct.pack_into(code, data, r * row_step + c * point_step + f.offset, next(values))
    data += draw(st.binary(max_size=8))  # bytes after the last row are allowed and ignored
    return PointCloud2(
        height=height, width=width, fields=fields, is_bigendian=big, point_step=point_step, row_step=row_step,
        data=bytes(data), is_dense=draw(st.booleans()),
    )  # fmt: skip


def like(msg: PointCloud2, **changes) -> PointCloud2:
    values = {k: getattr(msg, k) for k in ("height", "width", "is_bigendian", "point_step", "row_step", "is_dense")}
    values.update(fields=list(msg.fields), data=bytes(msg.data))
    values.update(changes)
    return PointCloud2(**values)


def field_like(f: PointField, **changes) -> PointField:
    values = dict(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
    values.update(changes)
    return PointField(**values)


@st.composite
def bad_clouds(draw) -> tuple[str, PointCloud2, tuple[str, ...]]:
    """(mutation, cloud, words the error must contain): one thing of a good cloud broken."""
    good = draw(good_clouds().filter(lambda m: m.width > 0))
    fields = list(good.fields)
    i = draw(st.integers(0, len(fields) - 1))
    f = fields[i]
    kind = draw(
        st.sampled_from(
            ["datatype", "count", "offset_past_end", "overlap", "duplicate", "point_step", "row_step",
             "truncated", "huge_width", "huge_height", "huge_step", "zero_point_step", "missing_xyz"]
        )
    )  # fmt: skip
    if kind == "datatype":
        bad = draw(st.integers(0, 255).filter(lambda d: d not in SIZES))
        fields[i] = field_like(f, datatype=bad)
        return kind, like(good, fields=fields), (repr(f.name), str(bad))
    if kind == "count":
        fields[i] = field_like(f, count=0)
        return kind, like(good, fields=fields), (repr(f.name), "count 0")
    if kind == "offset_past_end":
        offset = draw(st.integers(good.point_step - SIZES[f.datatype] * f.count + 1, U32))
        fields[i] = field_like(f, offset=offset)
        return kind, like(good, fields=fields), (repr(f.name), str(offset))
    if kind == "overlap":
        other = fields[(i + 1) % len(fields)]
        fields[i] = field_like(f, offset=other.offset)
        return kind, like(good, fields=fields), (repr(f.name),)
    if kind == "duplicate":
        fields.append(field_like(f))
        return kind, like(good, fields=fields), (repr(f.name), "twice")
    if kind == "point_step":
        end = max(g.offset + SIZES[g.datatype] * g.count for g in fields)
        step = draw(st.integers(1, end - 1))
        return kind, like(good, point_step=step, row_step=step * good.width), ("past point_step", str(step))
    if kind == "row_step":
        row_step = draw(st.integers(0, good.width * good.point_step - 1))
        return kind, like(good, row_step=row_step), ("row_step", str(row_step))
    if kind == "truncated":
        cut = draw(st.integers(1, len(good.data)))
        needed = (good.height - 1) * good.row_step + good.width * good.point_step
        data = bytes(good.data)[: needed - cut] if needed - cut >= 0 else b""
        return kind, like(good, data=data), ("truncated", str(len(data)))
    if kind == "huge_width":
        width = draw(st.integers(max(good.width, len(good.data)) + 1, U32))
        return kind, like(good, width=width, row_step=min(U32, width * good.point_step)), ()
    if kind == "huge_height":
        height = draw(st.integers(good.height + 1, U32))
        return kind, like(good, height=height), ("truncated", f"height {height}")
    if kind == "huge_step":
        step = draw(st.integers(max(good.point_step, len(good.data)) + 1, U32))
        return kind, like(good, point_step=step, row_step=min(U32, step * good.width)), ()
    if kind == "zero_point_step":
        return kind, like(good, point_step=0, row_step=0), ("point_step",)
    # missing_xyz
    lost = draw(st.sampled_from(["x", "y", "z"]))
    return kind, like(good, fields=[g for g in fields if g.name != lost]), ("no field", lost)


def reference_points(msg: PointCloud2) -> np.ndarray:
    """(N, 4) float32 [x, y, z, intensity] from the bytes with `struct`, NaN/Inf rows dropped, row-major."""
    order = ">" if msg.is_bigendian else "<"
    by_name = {f.name: f for f in msg.fields}
    rows = []
    for r in range(msg.height):
        for c in range(msg.width):
            base = r * msg.row_step + c * msg.point_step
            row = []
            for name in ("x", "y", "z", "intensity"):
                f = by_name.get(name)
                if f is None:
                    row.append(0.0)
                    continue
                code = order + STRUCT_CODES[f.datatype]
                row.append(struct.unpack_from(code, bytes(msg.data), base + f.offset)[0])
            rows.append(row)
    out = np.asarray(rows, dtype=np.float64).reshape(-1, 4).astype(np.float32)
    return out[np.isfinite(out[:, :3]).all(axis=1)]


def decode_bounded(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """Both decoders, with the peak of Python/numpy allocations bounded by the message's data size."""
    tracemalloc.start()
    try:
        organized = cloud_to_array(msg, organized=True, source="/lidar")
        points = cloud_to_points(msg, source="/lidar")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    limit = 4 * len(msg.data) + MEMORY_SLACK
    assert peak <= limit, f"decoding {len(msg.data)} bytes allocated {peak} bytes (bound {limit})"
    return organized, points


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@given(st.one_of(good_clouds().map(lambda m: ("good", m, ())), bad_clouds()))
def test_generated_clouds_decode_like_struct_or_raise_naming_the_field(case):
    kind, msg, words = case
    outcome = fuzz_tally.check(BOUNDARY, kind, lambda: decode_bounded(msg), PointCloudError)
    if kind == "good":
        assert outcome.error is None, f"a well-formed cloud was refused: {outcome.message}"
        organized, points = outcome.value
        assert organized.shape == (msg.height, msg.width)
        assert not organized.flags.writeable
        np.testing.assert_array_equal(points, reference_points(msg))
    elif kind in ("huge_width", "huge_step") and outcome.error is None:
        raise AssertionError(f"{kind}: a cloud larger than its data decoded to {len(outcome.value[1])} points")
    else:
        assert outcome.error is not None, f"{kind}: decoded a malformed cloud"
        assert "/lidar" in outcome.message
        if kind.startswith("huge"):  # the header's sizes: named as row_step or point_step, whichever gives out
            assert "row_step" in outcome.message or "point_step" in outcome.message, outcome.message
        for word in words:
            assert word in outcome.message, f"{kind}: {word!r} not in {outcome.message!r}"


def test_max_u32_point_step_is_a_pointcloud_error_not_a_numpy_one():
    """Regression (found by the generator): point_step 2**32 - 1 made numpy refuse the dtype's itemsize."""
    msg = PointCloud2(
        height=1, width=1, fields=[PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")],
        point_step=U32, row_step=U32, data=bytes(12),
    )  # fmt: skip
    with pytest.raises(PointCloudError, match="point_step 4294967295 is larger"):
        cloud_to_points(msg, source="/lidar")


def test_an_empty_cloud_is_read_only_too():
    """Regression (found by the generator): a 0-point cloud came back as a writable array."""
    msg = PointCloud2(
        height=1, width=0, fields=[PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")],
        point_step=12, row_step=0, data=b"",
    )  # fmt: skip
    assert not cloud_to_array(msg, organized=True).flags.writeable
