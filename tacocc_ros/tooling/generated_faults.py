"""Generated malformed messages for `tacocc drive --generated`: a good message with one field broken at random.

Where `faults.py` is a fixed list of named faults injected one at a time, this draws, for any message of a
stream, one mutation of that stream's boundary (the same families the property-based tests generate:
test/ros/test_fuzz_*.py) with random values, so that minutes of traffic carry thousands of different
bad messages among the good ones. Every mutation is one the node must refuse (or, for NaN points and
out-of-order odometry stamps, absorb) without dying; `MUTATIONS` names them per stream.

The good message is never modified: each mutation builds a new message (the driver restamps and reuses
its good messages).
"""

from __future__ import annotations

import copy
import struct
import zlib

import numpy as np
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

U32 = 2**32 - 1
MUTATIONS: dict[str, tuple[str, ...]] = {
    "lidar": ("truncated", "datatype", "count", "offset", "point_step", "row_step", "huge_width", "missing_field",
              "duplicate_field", "nan_points", "random_bytes"),
    "compressed": ("truncated", "flipped", "foreign", "magic_garbage", "huge_png_header", "empty"),
    "raw": ("encoding", "step", "truncated", "huge_height", "zero_width"),
    "info": ("nan_k", "negative_focal", "zero_k", "inf_k"),
    "odom": ("nan_position", "inf_position", "zero_quaternion", "nan_quaternion", "huge_quaternion", "stamp_back"),
}  # fmt: skip


class GeneratedFaults:
    """Draws mutations with `rng`; `counts` tallies them as "<stream> <mutation>"."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.counts: dict[str, int] = {}

    def _pick(self, stream: str) -> str:
        mutation = str(self.rng.choice(MUTATIONS[stream]))
        key = f"{stream} {mutation}"
        self.counts[key] = self.counts.get(key, 0) + 1
        return mutation

    def cloud(self, good: PointCloud2) -> PointCloud2:
        """A PointCloud2 with one thing broken (the good one's header and stamp kept)."""
        m = self._pick("lidar")
        fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in good.fields]
        values = dict(
            header=good.header, height=good.height, width=good.width, fields=fields, is_bigendian=good.is_bigendian,
            point_step=good.point_step, row_step=good.row_step, data=good.data, is_dense=good.is_dense,
        )  # fmt: skip
        i = int(self.rng.integers(len(fields)))
        if m == "truncated":
            values["data"] = bytes(good.data[: int(self.rng.integers(0, len(good.data)))])
        elif m == "datatype":
            fields[i].datatype = int(self.rng.choice([0, *range(9, 256)]))
        elif m == "count":
            fields[i].count = 0
        elif m == "offset":
            fields[i].offset = int(self.rng.integers(good.point_step, U32))
        elif m == "point_step":
            step = int(self.rng.integers(1, max(2, good.point_step - 3)))
            values.update(point_step=step, row_step=step * good.width)
        elif m == "row_step":
            values["row_step"] = int(self.rng.integers(0, good.width * good.point_step))
        elif m == "huge_width":
            values["width"] = int(self.rng.integers(good.width + 1, U32 // max(1, good.point_step)))
        elif m == "missing_field":
            values["fields"] = [f for f in fields if f.name != str(self.rng.choice(["x", "y", "z"]))]
        elif m == "duplicate_field":
            values["fields"] = [*fields, fields[i]]
        elif m == "nan_points":  # all points NaN: decoded, then dropped as non-finite (an empty sweep)
            data = bytearray(good.data)
            nan = struct.pack(">f" if good.is_bigendian else "<f", float("nan"))
            x = next(f for f in fields if f.name == "x")
            for p in range(good.width * good.height):
                data[p * good.point_step + x.offset : p * good.point_step + x.offset + 4] = nan
            values["data"] = bytes(data)
        else:  # random bytes of the right length: decodes, to random points
            values["data"] = self.rng.integers(0, 256, len(good.data), dtype=np.uint8).tobytes()
        return PointCloud2(**values)

    def image(self, good: CompressedImage | Image) -> CompressedImage | Image:
        if isinstance(good, Image):
            return self._raw(good)
        m = self._pick("compressed")
        data = bytes(good.data)
        if m == "truncated":
            data = data[: int(self.rng.integers(0, len(data)))]
        elif m == "flipped":
            flips = self.rng.integers(0, len(data), 8)
            buffer = bytearray(data)
            for at in flips:
                buffer[at] ^= int(self.rng.integers(1, 256))
            data = bytes(buffer)
        elif m == "foreign":
            data = self.rng.integers(0, 256, int(self.rng.integers(1, 4096)), dtype=np.uint8).tobytes()
        elif m == "magic_garbage":
            data = b"\xff\xd8\xff" + self.rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
        elif m == "huge_png_header":
            data = _png_header(int(self.rng.integers(9000, 2**31 - 1)), int(self.rng.integers(9000, 2**31 - 1)))
        else:
            data = b""
        return CompressedImage(header=good.header, format=good.format, data=data)

    def _raw(self, good: Image) -> Image:
        m = self._pick("raw")
        values = dict(
            header=good.header, height=good.height, width=good.width, encoding=good.encoding,
            is_bigendian=good.is_bigendian, step=good.step, data=good.data,
        )  # fmt: skip
        if m == "encoding":
            values["encoding"] = str(self.rng.choice(["yuv422", "bayer_rggb8", "16UC1", "", "rgb16", "RGB8"]))
        elif m == "step":
            values["step"] = int(self.rng.integers(0, good.width * 3))
        elif m == "truncated":
            values["data"] = bytes(good.data[: int(self.rng.integers(0, len(good.data)))])
        elif m == "huge_height":
            values["height"] = int(self.rng.integers(good.height + 1, U32))
        else:
            values["width"] = 0
        return Image(**values)

    def info(self, good: CameraInfo) -> CameraInfo:
        m = self._pick("info")
        bad = copy.copy(good)
        k = list(good.k)
        if m == "nan_k":
            k[int(self.rng.integers(9))] = float("nan")
        elif m == "negative_focal":
            k[0] = -abs(k[0]) - 1.0
        elif m == "zero_k":
            k = [0.0] * 9
        else:
            k[int(self.rng.choice([0, 4]))] = float("inf")
        bad.k = k
        return bad

    def odom(self, good: Odometry) -> Odometry:
        m = self._pick("odom")
        bad = copy.deepcopy(good)
        p, q = bad.pose.pose.position, bad.pose.pose.orientation
        if m == "nan_position":
            setattr(p, str(self.rng.choice(["x", "y", "z"])), float("nan"))
        elif m == "inf_position":
            setattr(p, str(self.rng.choice(["x", "y", "z"])), float("-inf"))
        elif m == "zero_quaternion":
            q.x = q.y = q.z = q.w = 0.0
        elif m == "nan_quaternion":
            setattr(q, str(self.rng.choice(["x", "y", "z", "w"])), float("nan"))
        elif m == "huge_quaternion":
            q.x, q.y, q.z, q.w = 1e300, 1e300, 0.0, 0.0
        else:  # a pose 0.02-0.08 s older than the good one: out of order, absorbed by the pose buffer
            ns = (
                bad.header.stamp.sec * 1_000_000_000 + bad.header.stamp.nanosec - int(self.rng.integers(20, 80)) * 10**6
            )
            bad.header.stamp.sec, bad.header.stamp.nanosec = divmod(max(ns, 0), 1_000_000_000)
        return bad


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR for width x height (valid CRC), with no image data: a header that lies."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
