"""Output messages of the occupancy node, built from a uint8 label grid and its GridSpec.

- `MarkerBuilder.build` -> visualization_msgs/MarkerArray: a DELETEALL marker first, then one CUBE_LIST
  per class present (ns = class name, id = class id, palette colour, cube scale = voxel size).
- `build_cloud` -> sensor_msgs/PointCloud2 of the occupied voxel centres with fields x, y, z (float32),
  label (uint32) and rgb (float32 holding 0x00RRGGBB, the packing RViz's RGB8 colour transformer reads).
- `build_diagnostics` -> diagnostic_msgs/DiagnosticArray from the dict of `NodeStats.snapshot`.

Occupied means a label in 1..16; empty (0) and ignore (255) voxels are never drawn. Header stamp and
frame id are arguments: the LiDAR stamp and frame of the input sweep. When a cap on cubes or points is
given and more voxels are occupied, the voxels whose centres are farthest from the LiDAR origin are
dropped first (ties broken by grid order), so the scene near the vehicle is always complete.
"""

from __future__ import annotations

import array

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from tacocc_core.bags.cloud_layout import dtype_to_fields
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, PALETTE
from tacocc_ros.messages.stamps import make_header

# Output topics, relative to the node's namespace: /occupancy/markers and /occupancy/cloud in the root
# namespace, whether the node runs alone or from launch/tacocc.launch.py, as rviz/tacocc.rviz expects.
MARKERS_TOPIC = "occupancy/markers"
CLOUD_TOPIC = "occupancy/cloud"

CLOUD_DTYPE = np.dtype({"names": ["x", "y", "z", "label", "rgb"], "formats": ["<f4", "<f4", "<f4", "<u4", "<f4"]})
CLOUD_OFFSETS = {f.name: f.offset for f in dtype_to_fields(CLOUD_DTYPE)}


def occupied_voxels(labels: np.ndarray, grid: GridSpec, max_voxels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Occupied voxels of a label grid, capped nearest-first.

    Args:
        labels: (X, Y, Z) uint8, 0 empty, 1..16 classes, 255 ignore; shape must equal `grid.shape`.
        grid: the grid of `labels`, LiDAR frame.
        max_voxels: keep at most this many (the nearest to the LiDAR origin); None keeps all.

    Returns:
        flat: (M,) int64 flat indices into `labels`, in grid order.
        classes: (M,) uint8 labels 1..16.
    """
    labels = np.asarray(labels)
    if labels.shape != tuple(grid.shape) or labels.dtype != np.uint8:
        raise ValueError(f"expected a {tuple(grid.shape)} uint8 label grid, got {labels.shape} {labels.dtype}")
    if max_voxels is not None and max_voxels < 0:
        raise ValueError(f"max_voxels must be >= 0 or None, got {max_voxels}")
    flat_labels = labels.reshape(-1)
    flat = np.flatnonzero((flat_labels != 0) & (flat_labels != IGNORE))
    if max_voxels is not None and len(flat) > max_voxels:
        centres = grid.index_to_center(np.stack(np.unravel_index(flat, grid.shape), axis=1))
        order = np.argsort(np.einsum("ij,ij->i", centres, centres), kind="stable")
        flat = np.sort(flat[order[:max_voxels]])
    return flat, flat_labels[flat]


def voxel_centres(flat: np.ndarray, grid: GridSpec) -> np.ndarray:
    """(M,) flat indices -> (M, 3) float64 metric centres, LiDAR frame."""
    return grid.index_to_center(np.stack(np.unravel_index(flat, grid.shape), axis=1))


class MarkerBuilder:
    """Builds the MarkerArray of a label grid; reuses one geometry_msgs/Point per voxel between frames.

    Creating ~30k Point objects costs tens of milliseconds in Python, while the occupied voxels of
    consecutive frames largely repeat; Points are never mutated once built, so sharing them across
    messages is safe. The cache grows with the number of distinct voxels ever drawn, at most
    the grid size (about 100 bytes each: 64 MB for every voxel of a 200x200x16 grid).

    Args:
        grid: the grid of the labels, LiDAR frame.
        max_cubes: cap on cubes over all classes (nearest kept); None draws every occupied voxel.
        alpha: opacity of the cubes, 0..1.
    """

    def __init__(self, grid: GridSpec, max_cubes: int | None = None, alpha: float = 1.0) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.grid = grid
        self.max_cubes = max_cubes
        self.alpha = float(alpha)
        self._points: list[Point | None] = [None] * int(np.prod(grid.shape))

    def _points_for(self, flat: np.ndarray) -> list[Point]:
        cache = self._points
        indices = flat.tolist()
        missing = [i for i in indices if cache[i] is None]
        if missing:
            for i, (x, y, z) in zip(missing, voxel_centres(np.asarray(missing), self.grid).tolist(), strict=True):
                cache[i] = Point(x=x, y=y, z=z)
        return [cache[i] for i in indices]

    def build(self, labels: np.ndarray, stamp_ns: int, frame_id: str) -> MarkerArray:
        """(X, Y, Z) uint8 labels -> MarkerArray [DELETEALL, one CUBE_LIST per present class]."""
        flat, classes = occupied_voxels(labels, self.grid, self.max_cubes)
        header = make_header(stamp_ns, frame_id)
        markers = [Marker(header=header, action=Marker.DELETEALL)]
        order = np.argsort(classes, kind="stable")
        present, starts = np.unique(classes[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        sx, sy, sz = self.grid.voxel_size
        for n, cls in enumerate(present.tolist()):
            r, g, b = (PALETTE[cls] / 255.0).tolist()
            marker = Marker(
                header=header,
                ns=CLASS_NAMES[cls],
                id=cls,
                type=Marker.CUBE_LIST,
                action=Marker.ADD,
                color=ColorRGBA(r=r, g=g, b=b, a=self.alpha),
            )
            marker.pose.orientation.w = 1.0
            marker.scale.x, marker.scale.y, marker.scale.z = sx, sy, sz
            marker.points = self._points_for(flat[order[bounds[n] : bounds[n + 1]]])
            markers.append(marker)
        return MarkerArray(markers=markers)


def build_markers(
    labels: np.ndarray, grid: GridSpec, stamp_ns: int, frame_id: str, max_cubes: int | None = None
) -> MarkerArray:
    """One-off `MarkerBuilder(grid, max_cubes).build(...)`; a node keeps a MarkerBuilder instead."""
    return MarkerBuilder(grid, max_cubes).build(labels, stamp_ns, frame_id)


def pack_rgb(colours: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N,) float32 whose bits are 0x00RRGGBB (PCL / RViz packing)."""
    c = np.asarray(colours, dtype=np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype("<u4").view("<f4")


def build_cloud(
    labels: np.ndarray, grid: GridSpec, stamp_ns: int, frame_id: str, max_points: int | None = None
) -> PointCloud2:
    """(X, Y, Z) uint8 labels -> PointCloud2 of occupied voxel centres (x, y, z, label, rgb), 20 bytes a point."""
    flat, classes = occupied_voxels(labels, grid, max_points)
    points = np.empty(len(flat), dtype=CLOUD_DTYPE)
    xyz = voxel_centres(flat, grid)
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points["label"] = classes
    points["rgb"] = pack_rgb(PALETTE[np.minimum(classes, NUM_CLASSES - 1)])
    fields = [
        PointField(name=name, offset=CLOUD_OFFSETS[name], datatype=datatype, count=1)
        for name, datatype in (
            ("x", PointField.FLOAT32),
            ("y", PointField.FLOAT32),
            ("z", PointField.FLOAT32),
            ("label", PointField.UINT32),
            ("rgb", PointField.FLOAT32),
        )
    ]
    data = array.array("B")
    data.frombytes(points.tobytes())
    return PointCloud2(
        header=make_header(stamp_ns, frame_id),
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=CLOUD_DTYPE.itemsize,
        row_step=CLOUD_DTYPE.itemsize * len(points),
        data=data,
        is_dense=True,
    )


def build_diagnostics(
    stats: dict,
    stamp_ns: int,
    name: str = "tacocc_ros: occupancy",
    hardware_id: str = "",
    unheard: dict[str, int] | None = None,
) -> DiagnosticArray:
    """A `NodeStats.snapshot()` dict -> DiagnosticArray with one status.

    Level: WARN when frames were dropped or failed since the previous snapshot, otherwise OK.
    Values (strings, as DiagnosticStatus carries them): one `rate <topic> (Hz)` per input, `latency p50 (ms)`,
    `latency p99 (ms)`, `latency max (ms)` (over the stats' latency window), `published`, `dropped <reason>`,
    `failed <reason>`, `k=<k> count`, one value per counted event (`NodeStats.on_event`), and
    `unheard publishers <topic>` for each input topic with publishers the node cannot hear (`unheard`:
    {topic: how many}; WARN while there are any).
    """
    values = [KeyValue(key=f"rate {topic} (Hz)", value=f"{hz:.2f}") for topic, hz in sorted(stats["rates_hz"].items())]
    for q in ("p50", "p99", "max"):
        ms = stats["latency_ms"].get(q)
        values.append(KeyValue(key=f"latency {q} (ms)", value="n/a" if ms is None else f"{ms:.1f}"))
    values.append(KeyValue(key="published", value=str(stats["published"])))
    values += [KeyValue(key=f"dropped {r}", value=str(n)) for r, n in sorted(stats["dropped"].items())]
    values += [KeyValue(key=f"failed {r}", value=str(n)) for r, n in sorted(stats["failed"].items())]
    values += [KeyValue(key=f"k={k} count", value=str(n)) for k, n in sorted(stats["k_histogram"].items())]
    values += [KeyValue(key=name, value=str(n)) for name, n in sorted(stats.get("events", {}).items())]
    unheard = {topic: n for topic, n in (unheard or {}).items() if n}
    values += [KeyValue(key=f"unheard publishers {topic}", value=str(n)) for topic, n in sorted(unheard.items())]
    new_dropped, new_failed = stats["new_dropped"], stats["new_failed"]
    if unheard:
        level = DiagnosticStatus.WARN
        message = f"publishers the node cannot hear on {', '.join(sorted(unheard))}"
    elif new_dropped or new_failed:
        level, message = DiagnosticStatus.WARN, f"{new_dropped} dropped, {new_failed} failed since last report"
    else:
        level, message = DiagnosticStatus.OK, "ok"
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=values)
    return DiagnosticArray(header=make_header(stamp_ns, ""), status=[status])
