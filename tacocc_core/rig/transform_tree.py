"""A static TF tree as pure functions: TransformStamped messages -> camera -> LiDAR and LiDAR -> ego.

This is the logic of the node's TF path (`tacocc_ros/node/extrinsics.py` is the tf2_ros adapter) and
of `tacocc calibration --bag` (a bag's /tf_static read with `rosbags`, no ROS install). A transform
message is anything shaped like geometry_msgs/TransformStamped: `header.frame_id` (the parent),
`child_frame_id`, `transform.translation.{x,y,z}` and `transform.rotation.{x,y,z,w}` (quaternion in
ROS order x, y, z, w); rclpy and rosbags messages both are. Its value maps points from the child frame
into the parent frame (`child2parent`), as tf2 defines it.

As in tf2, every frame has at most one parent: a later transform of the same child replaces the
earlier one (a re-published /tf_static). A lookup walks both frames up to their common root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from tacocc_core.geometry import invert_transform, make_transform


class TransformTreeError(ValueError):
    """A transform that cannot be used (no rotation, non-finite, a loop), naming the frames."""


def transform_to_matrix(transform: Any, where: str = "transform") -> np.ndarray:
    """geometry_msgs/Transform (rotation quaternion x, y, z, w) -> (4, 4) float64 child2parent."""
    t, q = transform.translation, transform.rotation
    translation = np.array([t.x, t.y, t.z], dtype=np.float64)
    quaternion = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = np.linalg.norm(quaternion)
    if not np.isfinite(translation).all() or not np.isfinite(norm) or norm < 1e-9:
        raise TransformTreeError(
            f"{where}: translation {translation.tolist()} / quaternion (x, y, z, w) {quaternion.tolist()} "
            "is not a rigid transform"
        )
    return make_transform(Rotation.from_quat(quaternion / norm).as_matrix(), translation)


@dataclass(frozen=True)
class FrameTransform:
    """One edge of the tree: `child2parent` (4, 4) float64 maps points from `child` into `parent`."""

    parent: str
    child: str
    child2parent: np.ndarray


def frame_transforms(transforms: Iterable[Any]) -> list[FrameTransform]:
    """TransformStamped messages (rclpy or rosbags) -> FrameTransforms, in the same order."""
    out = []
    for msg in transforms:
        parent, child = msg.header.frame_id.lstrip("/"), msg.child_frame_id.lstrip("/")
        out.append(FrameTransform(parent, child, transform_to_matrix(msg.transform, f"{parent} -> {child}")))
    return out


class TransformTree:
    """Frames and their parents; `lookup(target, source)` -> source2target (4, 4) or None."""

    def __init__(self, edges: Iterable[FrameTransform] = ()) -> None:
        self._parent: dict[str, tuple[str, np.ndarray]] = {}
        for edge in edges:
            self.add(edge)

    @classmethod
    def from_messages(cls, transforms: Iterable[Any]) -> TransformTree:
        return cls(frame_transforms(transforms))

    def add(self, edge: FrameTransform) -> None:
        """Set the parent of `edge.child` (replacing an earlier one); a loop raises TransformTreeError."""
        if edge.parent == edge.child:
            raise TransformTreeError(f"transform {edge.parent} -> {edge.child}: a frame cannot be its own parent")
        previous = self._parent.get(edge.child)
        self._parent[edge.child] = (edge.parent, np.asarray(edge.child2parent, dtype=np.float64))
        try:
            self._to_root(edge.child)
        except TransformTreeError:
            if previous is None:
                del self._parent[edge.child]
            else:
                self._parent[edge.child] = previous
            raise

    @property
    def frames(self) -> set[str]:
        return set(self._parent) | {parent for parent, _ in self._parent.values()}

    def _to_root(self, frame: str) -> tuple[str, dict[str, np.ndarray]]:
        """(root, {f: frame2f}) for `frame` and every frame above it, the root last."""
        chain = {frame: np.eye(4)}
        here = frame
        while here in self._parent:
            parent, here2parent = self._parent[here]
            if parent in chain:
                raise TransformTreeError(f"the transforms form a loop through {parent!r} and {here!r}")
            chain[parent] = here2parent @ chain[here]
            here = parent
        return here, chain

    def lookup(self, target: str, source: str) -> np.ndarray | None:
        """source2target (4, 4): maps points from `source` into `target`; None when they are not connected."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        if source not in self.frames or target not in self.frames:
            return None
        root_s, up_s = self._to_root(source)  # up_s[f] = source2f
        root_t, up_t = self._to_root(target)  # up_t[f] = target2f
        if root_s != root_t:
            return None
        common = next(f for f in up_s if f in up_t)  # the lowest frame both chains pass through
        return invert_transform(up_t[common]) @ up_s[common]


@dataclass(frozen=True)
class RigTransforms:
    """What TF says about the rig: `cam2lidar` (4, 4) per camera name, `lidar2ego` (4, 4) or None.

    `missing` names each camera (or "lidar2ego") that could not be resolved, with the reason.
    """

    cam2lidar: dict[str, np.ndarray]
    lidar2ego: np.ndarray | None
    missing: dict[str, str] = field(default_factory=dict)


def rig_from_tree(
    tree: TransformTree, lidar_frame: str, ego_frame: str, camera_frames: Mapping[str, str]
) -> RigTransforms:
    """cam2lidar of every camera (`camera_frames`: camera name -> its images' frame id) and lidar2ego."""
    cams, missing = {}, {}
    for name, frame in camera_frames.items():
        cam2lidar = tree.lookup(lidar_frame, frame)
        if cam2lidar is None:
            missing[name] = _why(tree, frame, lidar_frame)
        else:
            cams[name] = cam2lidar
    lidar2ego = tree.lookup(ego_frame, lidar_frame)
    if lidar2ego is None:
        missing["lidar2ego"] = _why(tree, lidar_frame, ego_frame)
    return RigTransforms(cams, lidar2ego, missing)


def rig_from_transforms(
    transforms: Iterable[Any], lidar_frame: str, ego_frame: str, camera_frames: Mapping[str, str]
) -> RigTransforms:
    """TransformStamped messages (e.g. a /tf_static) -> RigTransforms; see `rig_from_tree`."""
    return rig_from_tree(TransformTree.from_messages(transforms), lidar_frame, ego_frame, camera_frames)


def _why(tree: TransformTree, source: str, target: str) -> str:
    absent = [f for f in (source, target) if f.lstrip("/") not in tree.frames]
    if absent:
        return f"no transform mentions frame {', '.join(repr(f) for f in absent)}"
    return f"frames {source!r} and {target!r} are in separate trees"
