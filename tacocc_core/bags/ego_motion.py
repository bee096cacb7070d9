"""Ego poses from a bag's /tf when it has no odometry: the vehicle frame's chain of parents, composed.

A recorded vehicle publishes its motion as TF (`odom -> base_link`, often under `map -> odom`) even where
no nav_msgs/Odometry is recorded. `ego_poses_from_tf` walks up from the ego frame through the parents
named in /tf (and /tf_static, for fixed links such as a static `map -> odom`) to the root, and composes
the chain at every stamp of the lowest moving link: the pose of the ego frame in the root frame
(ego2global, (4, 4) float64). A higher moving link (a `map -> odom` correction) takes its latest value
at or before that stamp (its first one before it starts). No moving link above the ego frame: no poses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tacocc_core.bags.reading import BagError, BagReader
from tacocc_core.rig.transform_tree import FrameTransform, TransformTreeError, frame_transforms


@dataclass(frozen=True)
class StampedTransform:
    """One /tf entry: its header stamp (ns) and the transform (child -> parent)."""

    stamp_ns: int
    edge: FrameTransform


def read_transforms(reader: BagReader, topic: str) -> list[StampedTransform]:
    """Every TransformStamped of a tf2_msgs/TFMessage topic of the bag, in receive order (BagError if malformed)."""
    out = []
    for raw in reader.messages([topic]):
        msg = reader.decode(raw)
        try:
            edges = frame_transforms(msg.transforms)
        except TransformTreeError as err:
            raise BagError(f"{reader.path}: {topic} at {raw.stamp_ns} ns: {err}") from None
        for t, edge in zip(msg.transforms, edges, strict=True):
            out.append(StampedTransform(int(t.header.stamp.sec) * 1_000_000_000 + int(t.header.stamp.nanosec), edge))
    return out


def ego_poses_from_tf(
    dynamic: Sequence[StampedTransform], static: Iterable[FrameTransform], ego_frame: str
) -> list[tuple[int, np.ndarray]]:
    """[(stamp_ns, ego2global (4, 4) float64)] in stamp order; [] when nothing above `ego_frame` moves.

    Args:
        dynamic: the /tf transforms (stamped); a child keeps the parent of its first transform.
        static: the /tf_static transforms (a later one of the same child replaces an earlier one).
        ego_frame: the vehicle frame (the odometry's child frame, e.g. base_link).
    """
    moving: dict[str, tuple[str, list[int], list[np.ndarray]]] = {}
    for item in sorted(dynamic, key=lambda s: s.stamp_ns):
        parent, stamps, values = moving.setdefault(item.edge.child, (item.edge.parent, [], []))
        if item.edge.parent == parent:
            stamps.append(item.stamp_ns)
            values.append(np.asarray(item.edge.child2parent, dtype=np.float64))
    fixed = {edge.child: edge for edge in static}
    chain: list[str] = []  # frames whose link to their parent is composed, lowest first
    here, seen = ego_frame.lstrip("/"), set()
    while here in moving or here in fixed:
        if here in seen:
            raise BagError(f"the transforms above {ego_frame!r} form a loop through {here!r}")
        seen.add(here)
        chain.append(here)
        here = moving[here][0] if here in moving else fixed[here].parent
    lowest = next((f for f in chain if f in moving), None)
    if lowest is None:
        return []
    out = []
    for stamp in moving[lowest][1]:
        pose = np.eye(4)
        for frame in chain:
            if frame in moving:
                _, stamps, values = moving[frame]
                index = max(int(np.searchsorted(stamps, stamp, side="right")) - 1, 0)
                link = values[index]
            else:
                link = fixed[frame].child2parent
            pose = link @ pose
        out.append((stamp, pose))
    return out
