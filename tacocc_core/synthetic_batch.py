"""Synthetic but plausible step batches for benchmarks and tests, with no dataset.

A ring of cameras looking outwards around the LiDAR (the nuScenes rig's yaws, pinhole intrinsics
that fit the configured image size), images with a sky above a textured lower half, and a LiDAR
cloud of `points_per_sweep` returns per sweep: a ground plane and boxes scattered around the car,
with the time-lag channel of `config.lidar.sweeps` earlier sweeps. Layout: `batch_at` (one time step).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tacocc_core.config import ModelConfig

# Yaw of each camera's optical axis in the LiDAR frame for the nuScenes channel names (LIDAR_TOP: x
# right, y forward), degrees; other names are spread evenly around the car.
NUSCENES_YAW_DEG = {
    "CAM_FRONT": 90.0,
    "CAM_FRONT_RIGHT": 35.0,
    "CAM_FRONT_LEFT": 145.0,
    "CAM_BACK": 270.0,
    "CAM_BACK_LEFT": 200.0,
    "CAM_BACK_RIGHT": 340.0,
}


def camera_rig(config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, 3, 3) intrinsics and (V, 4, 4) cam2lidar of an outward-looking ring 0.3 m below the LiDAR."""
    names = config.cameras.names
    h, w = config.cameras.image_size
    focal = 0.8 * w  # about 64 degrees horizontal field of view
    cam2img = torch.tensor([[focal, 0.0, w / 2], [0.0, focal, h / 2], [0.0, 0.0, 1.0]]).expand(len(names), 3, 3)
    cam2lidar = torch.zeros(len(names), 4, 4)
    for i, name in enumerate(names):
        yaw = math.radians(NUSCENES_YAW_DEG.get(name, 360.0 * i / len(names)))
        forward = torch.tensor([math.cos(yaw), math.sin(yaw), 0.0])
        right = torch.tensor([math.sin(yaw), -math.cos(yaw), 0.0])
        down = torch.tensor([0.0, 0.0, -1.0])
        cam2lidar[i, :3, 0], cam2lidar[i, :3, 1], cam2lidar[i, :3, 2] = right, down, forward
        cam2lidar[i, :3, 3] = torch.tensor([0.0, 0.0, -0.3]) + 0.5 * forward
        cam2lidar[i, 3, 3] = 1.0
    return cam2img.clone(), cam2lidar


def synthetic_points(config: ModelConfig, points_per_sweep: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 5) float32 [x, y, z, intensity, time_lag_s] in the LiDAR frame: ground + boxes, all sweeps."""
    sweeps = config.lidar.sweeps + 1
    n = points_per_sweep * sweeps
    reach = min(config.lidar.max_range, max(abs(v) for v in (*config.grid.x_range, *config.grid.y_range)))
    n_ground = n // 2
    r = np.sqrt(rng.uniform(4.0, reach**2, n_ground))
    a = rng.uniform(0, 2 * np.pi, n_ground)
    ground = np.stack([r * np.cos(a), r * np.sin(a), rng.normal(-1.8, 0.05, n_ground)], axis=1)
    centres = rng.uniform(-reach * 0.8, reach * 0.8, (40, 2))
    centres = centres[np.linalg.norm(centres, axis=1) > 5.0]
    which = rng.integers(0, len(centres), n - n_ground)
    boxes = np.concatenate(
        [centres[which] + rng.uniform(-1.5, 1.5, (len(which), 2)), rng.uniform(-1.8, 0.5, (len(which), 1))], axis=1
    )
    xyz = np.concatenate([ground, boxes]).astype(np.float32)
    intensity = rng.uniform(0, 255, (n, 1)).astype(np.float32)
    lag = (rng.integers(0, sweeps, (n, 1)) * 0.05).astype(np.float32)
    return np.concatenate([xyz, intensity, lag], axis=1)


def synthetic_images(config: ModelConfig, batch_size: int, rng: np.random.Generator) -> torch.Tensor:
    """(B, V, 3, H, W) uint8: a smooth blue sky over the top third, textured grey-green below."""
    h, w = config.cameras.image_size
    v = len(config.cameras.names)
    out = rng.integers(30, 160, (batch_size, v, 3, h, w), dtype=np.uint8)
    sky = h // 3
    out[:, :, 0, :sky], out[:, :, 1, :sky], out[:, :, 2, :sky] = 140, 185, 235
    return torch.from_numpy(out)


def synthetic_step_batch(
    config: ModelConfig, batch_size: int = 1, points_per_sweep: int = 35000, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A step batch (keys of `batch_at`) for `config`, on the CPU."""
    rng = np.random.default_rng(seed)
    cam2img, cam2lidar = camera_rig(config)
    v = len(config.cameras.names)
    clouds = [synthetic_points(config, points_per_sweep, rng) for _ in range(batch_size)]
    return {
        "images": synthetic_images(config, batch_size, rng),
        "cam2img": cam2img.expand(batch_size, v, 3, 3).clone(),
        "cam2lidar": cam2lidar.expand(batch_size, v, 4, 4).clone(),
        "camera_valid": torch.ones(batch_size, v, dtype=torch.bool),
        "points": torch.from_numpy(np.concatenate(clouds)),
        "points_batch": torch.repeat_interleave(torch.arange(batch_size), torch.tensor([len(c) for c in clouds])),
    }
