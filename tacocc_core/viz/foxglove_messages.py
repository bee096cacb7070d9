"""Foxglove messages (the `foxglove-sdk` schemas) of one occupancy frame, built from numpy, and their channels.

What a frame becomes, one channel per topic (protobuf encoding, the schemas Foxglove's 3D and Image panels read):
- `/occupancy/voxels` (and `/occupancy/ground_truth` where a frame has labels): `foxglove.VoxelGrid`, the dense
  (X, Y, Z) label grid in the LiDAR frame. Its pose is the grid's lower corner, `cell_size` the voxel size;
  cells are stored Z-Y-X (depth-major, row-major, as the schema defines), 5 bytes each: `red`, `green`,
  `blue`, `alpha` (uint8 colour fields the 3D panel draws; the class colour, alpha 0 for empty and ignore
  cells) and `label` (uint8 class id 0..16, 255 ignore), so a reader gets the exact labels back
  (`labels_from_cells`).
- `/lidar`: `foxglove.PointCloud` of the sweep (float32 x, y, z and intensity where the sweep has one).
- `/camera/<NAME>`: `foxglove.CompressedImage`, the camera's JPEG (or PNG) bytes as they arrived, frame id
  the camera name.
- `/tf`: `foxglove.FrameTransforms`: the LiDAR in the world (`map`) and each camera in the LiDAR frame.

Every message carries the LiDAR stamp; it is also the log time, so a recording plays back on sensor time.
`FoxgloveChannels.log` builds a message only when its channel has a sink (a subscribed client, a file), so
an idle server costs nothing per frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from foxglove import Context
from foxglove.channels import (
    CompressedImageChannel,
    FrameTransformsChannel,
    PointCloudChannel,
    VoxelGridChannel,
)
from foxglove.messages import (
    CompressedImage,
    FrameTransform,
    FrameTransforms,
    PackedElementField,
    PackedElementFieldNumericType,
    PointCloud,
    Pose,
    Quaternion,
    Timestamp,
    Vector3,
    VoxelGrid,
)
from scipy.spatial.transform import Rotation

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import NUM_CLASSES, PALETTE

OCCUPANCY_TOPIC = "/occupancy/voxels"
GROUND_TRUTH_TOPIC = "/occupancy/ground_truth"
LIDAR_TOPIC = "/lidar"
TF_TOPIC = "/tf"
WORLD_FRAME = "map"

# Bytes of one VoxelGrid cell, in this order.
CELL_FIELDS = ("red", "green", "blue", "alpha", "label")
CELL_STRIDE = len(CELL_FIELDS)
LABEL_OFFSET = CELL_FIELDS.index("label")


def camera_topic(camera: str) -> str:
    """The Foxglove topic of a camera's images: CAM_FRONT -> /camera/CAM_FRONT."""
    return f"/camera/{camera}"


def timestamp(stamp_ns: int) -> Timestamp:
    """Integer nanoseconds (>= 0) -> foxglove Timestamp."""
    if stamp_ns < 0:
        raise ValueError(f"a Foxglove timestamp must be >= 0 ns, got {stamp_ns}")
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return Timestamp(sec, nsec)


def _cell_table(palette: np.ndarray) -> np.ndarray:
    """(256, CELL_STRIDE) uint8: the cell bytes of every label value (unknown values: transparent)."""
    table = np.zeros((256, CELL_STRIDE), dtype=np.uint8)
    table[:, LABEL_OFFSET] = np.arange(256, dtype=np.uint8)
    table[1:NUM_CLASSES, :3] = palette[1:NUM_CLASSES]
    table[1:NUM_CLASSES, 3] = 255
    return table


CELL_TABLE = _cell_table(np.asarray(PALETTE, dtype=np.uint8))


def voxel_cells(labels: np.ndarray) -> np.ndarray:
    """(X, Y, Z) uint8 labels -> (Z, Y, X, CELL_STRIDE) uint8 cells in VoxelGrid order (C-contiguous).

    Empty (0), ignore (255) and any value past the classes get alpha 0: the 3D panel draws occupied voxels only.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype != np.uint8:
        raise ValueError(f"expected an (X, Y, Z) uint8 label grid, got {labels.dtype} {labels.shape}")
    return np.take(CELL_TABLE, labels.transpose(2, 1, 0), axis=0)


def labels_from_cells(data: bytes, shape: Sequence[int], cell_stride: int = CELL_STRIDE) -> np.ndarray:
    """The `label` bytes of VoxelGrid cell data (Z-Y-X order) -> (X, Y, Z) uint8 labels; inverse of `voxel_cells`.

    Raises ValueError when `data` does not hold shape[0] * shape[1] * shape[2] cells of `cell_stride` bytes.
    """
    nx, ny, nz = (int(n) for n in shape)
    cells = np.frombuffer(data, dtype=np.uint8)
    if cells.size != nx * ny * nz * cell_stride:
        raise ValueError(
            f"VoxelGrid data holds {cells.size} bytes, expected {nx}x{ny}x{nz} cells x {cell_stride} = "
            f"{nx * ny * nz * cell_stride}"
        )
    return cells.reshape(nz, ny, nx, cell_stride)[..., LABEL_OFFSET].transpose(2, 1, 0).copy()


def voxel_grid(labels: np.ndarray, grid: GridSpec, stamp_ns: int, frame_id: str) -> VoxelGrid:
    """(X, Y, Z) uint8 labels on `grid` (LiDAR frame `frame_id`) -> a dense foxglove VoxelGrid (module docstring)."""
    if tuple(np.shape(labels)) != tuple(grid.shape):
        raise ValueError(f"label grid {np.shape(labels)} does not match the grid {tuple(grid.shape)}")
    nx, ny, _ = grid.shape
    lx, ly, lz = (float(v) for v in grid.lower)
    sx, sy, sz = (float(v) for v in grid.voxel_size)
    uint8 = PackedElementFieldNumericType.Uint8
    return VoxelGrid(
        timestamp=timestamp(stamp_ns),
        frame_id=frame_id,
        pose=Pose(position=Vector3(x=lx, y=ly, z=lz), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
        row_count=int(ny),
        column_count=int(nx),
        cell_size=Vector3(x=sx, y=sy, z=sz),
        slice_stride=int(nx * ny * CELL_STRIDE),
        row_stride=int(nx * CELL_STRIDE),
        cell_stride=CELL_STRIDE,
        fields=[PackedElementField(name=name, offset=i, type=uint8) for i, name in enumerate(CELL_FIELDS)],
        data=voxel_cells(labels).tobytes(),
    )


def point_cloud(points: np.ndarray, stamp_ns: int, frame_id: str) -> PointCloud:
    """(N, >=3) float points [x, y, z, (intensity, ...)] in `frame_id` -> foxglove PointCloud (x, y, z[, intensity])."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"expected (N, >=3) points, got {points.shape}")
    columns = min(points.shape[1], 4)
    packed = np.ascontiguousarray(points[:, :columns], dtype="<f4")
    names = ("x", "y", "z", "intensity")[:columns]
    float32 = PackedElementFieldNumericType.Float32
    return PointCloud(
        timestamp=timestamp(stamp_ns),
        frame_id=frame_id,
        pose=Pose(position=Vector3(x=0.0, y=0.0, z=0.0), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
        point_stride=4 * columns,
        fields=[PackedElementField(name=name, offset=4 * i, type=float32) for i, name in enumerate(names)],
        data=packed.tobytes(),
    )


def image_format(ros_format: str) -> str:
    """A sensor_msgs/CompressedImage `format` ("jpeg", "rgb8; jpeg compressed bgr8", "png") -> "jpeg" or "png"."""
    return "png" if "png" in ros_format.lower() else "jpeg"


def compressed_image(data: bytes, fmt: str, stamp_ns: int, frame_id: str) -> CompressedImage:
    """Compressed image bytes (`fmt` "jpeg" or "png") -> foxglove CompressedImage."""
    return CompressedImage(timestamp=timestamp(stamp_ns), frame_id=frame_id, data=bytes(data), format=fmt)


@dataclass(frozen=True)
class Transform:
    """The pose of frame `child` in frame `parent`: (4, 4) float64 child -> parent (a ROS TF transform)."""

    parent: str
    child: str
    matrix: np.ndarray


def frame_transforms(transforms: Sequence[Transform], stamp_ns: int) -> FrameTransforms:
    """Rigid (4, 4) transforms -> foxglove FrameTransforms (translation + unit quaternion each)."""
    out = []
    for t in transforms:
        m = np.asarray(t.matrix, dtype=np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise ValueError(f"transform {t.parent} -> {t.child}: expected a finite (4, 4) matrix, got {m.shape}")
        qx, qy, qz, qw = (float(v) for v in Rotation.from_matrix(m[:3, :3]).as_quat())
        out.append(
            FrameTransform(
                timestamp=timestamp(stamp_ns),
                parent_frame_id=t.parent,
                child_frame_id=t.child,
                translation=Vector3(x=float(m[0, 3]), y=float(m[1, 3]), z=float(m[2, 3])),
                rotation=Quaternion(x=qx, y=qy, z=qz, w=qw),
            )
        )
    return FrameTransforms(transforms=out)


@dataclass(frozen=True)
class FoxgloveFrame:
    """What one published frame shows.

    Args:
        stamp_ns: the LiDAR stamp.
        lidar_frame: frame id of the grid and the sweep.
        labels: (X, Y, Z) uint8 predicted grid, or None.
        ground_truth: (X, Y, Z) uint8 label grid, or None.
        points: (N, >=3) float32 sweep in `lidar_frame`, or None.
        images: camera -> (compressed bytes, "jpeg" or "png"); cameras absent from a frame are left out.
        transforms: the TF frames at `stamp_ns`.
    """

    stamp_ns: int
    lidar_frame: str
    labels: np.ndarray | None = None
    ground_truth: np.ndarray | None = None
    points: np.ndarray | None = None
    images: Mapping[str, tuple[bytes, str]] = field(default_factory=dict)
    transforms: Sequence[Transform] = ()


def rig_transforms(
    lidar_frame: str, cam2lidar: Mapping[str, np.ndarray], lidar2world: np.ndarray | None
) -> tuple[Transform, ...]:
    """The TF frames of a rig: `map` -> LiDAR (when the pose is known) and LiDAR -> each camera (frame = name)."""
    out = [] if lidar2world is None else [Transform(WORLD_FRAME, lidar_frame, np.asarray(lidar2world))]
    out += [Transform(lidar_frame, camera, np.asarray(m)) for camera, m in cam2lidar.items()]
    return tuple(out)


class FoxgloveChannels:
    """The channels of one foxglove Context (a WebSocket server, an MCAP file, or both, are its sinks).

    Args:
        context: the foxglove Context the channels belong to.
        grid: the grid of every label grid logged.
        cameras: camera names; one image channel each.
        ground_truth: also a `/occupancy/ground_truth` channel.
    """

    def __init__(self, context: Context, grid: GridSpec, cameras: Sequence[str], ground_truth: bool = False) -> None:
        self.grid = grid
        self.occupancy = VoxelGridChannel(OCCUPANCY_TOPIC, context=context)
        self.ground_truth = VoxelGridChannel(GROUND_TRUTH_TOPIC, context=context) if ground_truth else None
        self.lidar = PointCloudChannel(LIDAR_TOPIC, context=context)
        self.cameras = {c: CompressedImageChannel(camera_topic(c), context=context) for c in cameras}
        self.tf = FrameTransformsChannel(TF_TOPIC, context=context)

    def _all(self) -> list:
        extra = [] if self.ground_truth is None else [self.ground_truth]
        return [self.occupancy, *extra, self.lidar, *self.cameras.values(), self.tf]

    def has_sinks(self) -> bool:
        """True when anything (a subscribed client, an MCAP file) receives at least one channel."""
        return any(c.has_sinks() for c in self._all())

    def log(self, frame: FoxgloveFrame) -> int:
        """Log `frame` on the channels that have a sink (log time = its stamp); the number of messages logged."""
        stamp, lidar_frame, logged = frame.stamp_ns, frame.lidar_frame, 0
        if frame.labels is not None and self.occupancy.has_sinks():
            self.occupancy.log(voxel_grid(frame.labels, self.grid, stamp, lidar_frame), log_time=stamp)
            logged += 1
        gt = self.ground_truth
        if frame.ground_truth is not None and gt is not None and gt.has_sinks():
            gt.log(voxel_grid(frame.ground_truth, self.grid, stamp, lidar_frame), log_time=stamp)
            logged += 1
        if frame.points is not None and self.lidar.has_sinks():
            self.lidar.log(point_cloud(frame.points, stamp, lidar_frame), log_time=stamp)
            logged += 1
        for camera, (data, fmt) in frame.images.items():
            channel = self.cameras.get(camera)
            if channel is not None and channel.has_sinks():
                channel.log(compressed_image(data, fmt, stamp, camera), log_time=stamp)
                logged += 1
        if frame.transforms and self.tf.has_sinks():
            self.tf.log(frame_transforms(frame.transforms, stamp), log_time=stamp)
            logged += 1
        return logged

    def close(self) -> None:
        """Close every channel (clients see them unadvertised)."""
        for channel in self._all():
            channel.close()
