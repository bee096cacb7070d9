"""The baseline a ROS user would otherwise run: the LiDAR sweeps, accumulated and voxelised.

What an OctoMap-style mapper gives from the same input as the network: every label-grid voxel that holds
at least one point of the sweeps the network sees (after the network's own point filtering: range,
ego box, outliers) is occupied, every other voxel is free. It has no classes; it is scored for geometry
IoU (occupied vs free) only, so that results tables show what the network adds over raw LiDAR.
"""

from __future__ import annotations

import numpy as np
import torch

from tacocc_core.conditioning.lidar_denoise import DenoiseParams, denoise_points
from tacocc_core.config import ModelConfig
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.data.sequences import scene_samples
from tacocc_core.model.voxelize import voxelize

# The class written into occupied voxels: any non-empty class does, geometry IoU only asks occupied or not.
OCCUPIED = 1


def lidar_accumulation(points: np.ndarray, config: ModelConfig) -> np.ndarray:
    """(P, 5) float [x, y, z, intensity, time_lag_s], LiDAR frame -> (X, Y, Z) uint8 on the config grid.

    OCCUPIED where a point of the filtered sweeps falls, 0 elsewhere.
    """
    grid = config.grid.spec()
    pts = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    batch = torch.zeros(len(pts), dtype=torch.int64)
    pts, batch = denoise_points(pts, batch, DenoiseParams.from_config(config))
    _, coords = voxelize(pts, batch, grid)
    out = np.zeros(grid.shape, dtype=np.uint8)
    c = coords.long().numpy()
    out[c[:, 1], c[:, 2], c[:, 3]] = OCCUPIED
    return out


def dataset_baseline(reader: NuScenesReader) -> dict[int, np.ndarray]:
    """{stamp_ns: LiDAR accumulation grid} of every keyframe of a dataset (the frames as the reader builds them)."""
    out = {}
    for scene in reader.nusc.scene:
        for token in scene_samples(reader.nusc, scene["name"]):
            frame = reader.frame(token)
            out[int(frame.stamp_ns)] = lidar_accumulation(frame.points, reader.config)
    return out
