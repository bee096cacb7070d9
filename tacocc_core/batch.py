"""Frames -> tensors: the batch layout that the dataset's collate produces and the network consumes.

A batch holds B sequences of T frames each. Per-frame point clouds differ in size, so points are
concatenated with an index of the frame they belong to.

Batch keys (V cameras, images already at the network size):
    images:       (B, T, V, 3, H, W) uint8 RGB
    cam2img:      (B, T, V, 3, 3) float32 intrinsics of those images
    cam2lidar:    (B, T, V, 4, 4) float32
    camera_valid: (B, T, V) bool
    points:       (P, 5) float32 [x, y, z, intensity, time_lag_s], each in its frame's LiDAR frame
    points_frame: (P,) int64, the frame b * T + t each point belongs to
    lidar2global: (B, T, 4, 4) float64
    stamps_ns:    (B, T) int64
    labels:       (B, T, X, Y, Z) uint8; all 255 where a frame has no labels
    has_labels:   (B, T) bool
"""

from __future__ import annotations

import numpy as np
import torch

from tacocc_core.frame import Frame
from tacocc_core.labels import IGNORE


def frames_to_batch(sequences: list[list[Frame]], grid_shape: tuple[int, int, int]) -> dict[str, torch.Tensor]:
    """Stack B sequences of T frames (same camera count and image size) into the batch layout above."""
    if not sequences or not sequences[0]:
        raise ValueError("frames_to_batch: need at least one sequence with at least one frame")
    b, t = len(sequences), len(sequences[0])
    if any(len(seq) != t for seq in sequences):
        raise ValueError(f"frames_to_batch: sequences differ in length: {[len(s) for s in sequences]}")
    flat = [frame for seq in sequences for frame in seq]
    sizes = {f.images.shape for f in flat}
    if len(sizes) != 1:
        raise ValueError(f"frames_to_batch: image stacks differ in shape: {sorted(sizes)}")
    v, h, w, _ = flat[0].images.shape

    def stack(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(f, name) for f in flat])).to(dtype)

    labels = np.full((b * t, *grid_shape), IGNORE, dtype=np.uint8)
    has_labels = np.zeros(b * t, dtype=bool)
    for i, frame in enumerate(flat):
        if frame.labels is not None:
            if frame.labels.shape != tuple(grid_shape):
                raise ValueError(
                    f"frames_to_batch: labels of {frame.sample_token or f'frame {i}'} have shape "
                    f"{frame.labels.shape}, the grid is {tuple(grid_shape)}"
                )
            labels[i] = frame.labels
            has_labels[i] = True

    images = torch.from_numpy(np.stack([f.images for f in flat])).permute(0, 1, 4, 2, 3)
    points = torch.from_numpy(np.concatenate([f.points for f in flat], axis=0))
    points_frame = torch.repeat_interleave(torch.arange(b * t), torch.tensor([len(f.points) for f in flat]))
    return {
        "images": images.reshape(b, t, v, 3, h, w).contiguous(),
        "cam2img": stack("cam2img", torch.float32).reshape(b, t, v, 3, 3),
        "cam2lidar": stack("cam2lidar", torch.float32).reshape(b, t, v, 4, 4),
        "camera_valid": stack("camera_valid", torch.bool).reshape(b, t, v),
        "points": points,
        "points_frame": points_frame,
        "lidar2global": stack("lidar2global", torch.float64).reshape(b, t, 4, 4),
        "stamps_ns": torch.tensor([f.stamp_ns for f in flat], dtype=torch.int64).reshape(b, t),
        "labels": torch.from_numpy(labels).reshape(b, t, *grid_shape),
        "has_labels": torch.from_numpy(has_labels).reshape(b, t),
    }


def batch_at(batch: dict[str, torch.Tensor], t: int) -> dict[str, torch.Tensor]:
    """The frames at time step t of every sequence, with the T axis removed.

    `points_frame` becomes `points_batch`: (P_t,) int64 index in 0..B-1.
    """
    b, steps = batch["stamps_ns"].shape
    if not 0 <= t < steps:
        raise ValueError(f"batch_at: time step {t} outside 0..{steps - 1}")
    out = {key: value[:, t] for key, value in batch.items() if key not in ("points", "points_frame")}
    frame = batch["points_frame"]
    keep = (frame % steps) == t
    out["points"] = batch["points"][keep]
    out["points_batch"] = torch.div(frame[keep], steps, rounding_mode="floor")
    return out
