"""TacoccEncoder: one time step of the batch -> the fused voxel volume F_IL (paper Fig. 1, up to Eq. 1).

Stages (each a method, so that benchmarks can time them apart):
    condition:  sky masks of the images, denoised LiDAR points (tacocc_core.conditioning)
    encode_images: masked, normalised images -> ResNet + FPN features
    lift:       LSS view transform -> F_I on the coarse grid
    encode_lidar: voxelise + spconv encoder -> F_L on the coarse grid
    fuse:       adaptive bidirectional fuser -> F_IL
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tacocc_core.conditioning.lidar_denoise import DenoiseParams, denoise_points
from tacocc_core.conditioning.sky_mask import sky_masks
from tacocc_core.config import ModelConfig
from tacocc_core.model.fuser import AdaptiveFuser, KStats
from tacocc_core.model.image_backbone import IMAGENET_MEAN, ImageBackbone
from tacocc_core.model.lidar_encoder import LidarEncoder
from tacocc_core.model.lss import LSSViewTransform, depth_loss, lidar_depth_target
from tacocc_core.model.selector import noise_scale_at, tau_at
from tacocc_core.timing import NULL_TIMER, StageTimer

STEP_KEYS = ("images", "cam2img", "cam2lidar", "camera_valid", "points", "points_batch")


@dataclass
class EncoderOutput:
    """What the encoder hands to the temporal aggregator, the head and the renderer.

    Args:
        fused: (B, fuser.channels, X, Y, Z) F_IL on the coarse grid, LiDAR frame.
        image_volume: (B, view_transform.channels, X, Y, Z) F_I.
        lidar_volume: (B, lidar.encoder_channels[-1], X, Y, Z) F_L.
        image_occupied, lidar_occupied: (B, X, Y, Z) bool, the non-zero voxels of F_I and F_L.
        depth_logits: (B, V, D, h, w) per-cell depth-bin logits of the view transform.
        depth_target: (B, V, h, w) int64 bins from projected LiDAR (-1: none), or None when depth
            supervision is off (view_transform.depth_loss_weight == 0).
        k_stats: chosen-k histogram per frame, modality and scale.
        sky_masks: (B, V, H, W) bool sky pixels of the input images.
        points, points_batch: the denoised LiDAR points (P', 5) and their sample index (P',).
    """

    fused: torch.Tensor
    image_volume: torch.Tensor
    lidar_volume: torch.Tensor
    image_occupied: torch.Tensor
    lidar_occupied: torch.Tensor
    depth_logits: torch.Tensor
    depth_target: torch.Tensor | None
    k_stats: KStats
    sky_masks: torch.Tensor
    points: torch.Tensor
    points_batch: torch.Tensor

    def depth_loss(self) -> torch.Tensor:
        """Cross-entropy of the depth logits against the LiDAR depth target (0 when there is none)."""
        if self.depth_target is None:
            return self.depth_logits.sum() * 0.0
        return depth_loss(self.depth_logits, self.depth_target)


class TacoccEncoder(nn.Module):
    """Image branch + LiDAR branch + adaptive fuser, configured by a ModelConfig."""

    pixel_mean: torch.Tensor  # (1, 3, 1, 1) buffer: the ImageNet mean colour in [0, 1]

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.denoise = DenoiseParams.from_config(config)
        self.backbone: nn.Module = ImageBackbone(config.image_backbone)  # inference folding swaps it
        self.view_transform = LSSViewTransform(config)
        self.lidar = LidarEncoder(config)
        self.fuser = AdaptiveFuser(config)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)

    def condition(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sky masks (B, V, H, W) bool (from batch["sky_masks"] when the data loader made them) and denoised points."""
        masks = self.sky_masks_of(batch)
        points, points_batch = denoise_points(batch["points"], batch["points_batch"], self.denoise)
        return masks, points, points_batch

    def sky_masks_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, V, H, W) bool: batch["sky_masks"], or computed (cameras.sky_mask), or all False."""
        images = batch["images"]
        if "sky_masks" in batch:
            return batch["sky_masks"].bool()
        if self.config.cameras.sky_mask:
            return sky_masks(images)
        b, v, _, h, w = images.shape
        return torch.zeros(b, v, h, w, dtype=torch.bool, device=images.device)

    def encode_images(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(B, V, 3, H, W) uint8 + (B, V, H, W) sky -> (B*V, fpn_channels, H/stride, W/stride).

        Sky pixels are set to the mean colour, i.e. zero after normalisation.
        """
        b, v, _, h, w = images.shape
        x = images.reshape(b * v, 3, h, w).float() / 255.0
        x = torch.where(masks.reshape(b * v, 1, h, w), self.pixel_mean.to(x.dtype), x)
        return self.backbone(x)

    def lift(
        self, feats: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features -> (F_I, image_occupied, depth_logits)."""
        return self.view_transform(
            feats, batch["cam2img"], batch["cam2lidar"], batch["camera_valid"], tuple(batch["images"].shape[-2:])
        )

    def encode_lidar(
        self, points: torch.Tensor, points_batch: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoised points -> (F_L, lidar_occupied). spconv runs in float32 (outside autocast)."""
        with torch.autocast(points.device.type, enabled=False):
            return self.lidar(points.float(), points_batch, batch_size)

    def forward(
        self, batch: dict[str, torch.Tensor], step: int | None = None, timer: StageTimer = NULL_TIMER
    ) -> EncoderOutput:
        """One time step (`batch_at(batch, t)`); `step` is the training step that sets the Gumbel temperature.

        `timer` records the stages (conditioning, image_branch, view_transform, lidar_branch, fuser).
        """
        _check_step_batch(batch, self.config)
        b = batch["images"].shape[0]
        # One stage after the other on all torch threads. Overlapping the sky masks (on a thread of their own)
        # with the LiDAR branch is slower than running them in turn: both are many small steps that hold the
        # interpreter lock (docs/design/performance.md).
        with timer.stage("conditioning"):
            masks, points, points_batch = self.condition(batch)
        with timer.stage("lidar_branch"):
            lidar_volume, lidar_occupied = self.encode_lidar(points, points_batch, b)
        with timer.stage("image_branch"):
            feats = self.encode_images(batch["images"], masks)
        with timer.stage("view_transform"):
            image_volume, image_occupied, depth_logits = self.lift(feats, batch)
        fc = self.config.fuser
        tau = tau_at(step, fc.gumbel_tau, fc.tau_anneal_steps)
        noise = noise_scale_at(step, fc.tau_anneal_steps, fc.noise_fade)
        # The frames' stamps name them for the fuser's Gumbel noise (host sync; training only).
        keys = batch["stamps_ns"].tolist() if noise > 0 and self.training and "stamps_ns" in batch else None
        with timer.stage("fuser"):
            fused, k_stats = self.fuser(
                image_volume, image_occupied, lidar_volume.to(image_volume.dtype), lidar_occupied, tau, noise, keys
            )
        target = None
        if self.config.view_transform.depth_loss_weight > 0:
            target = lidar_depth_target(
                points,
                points_batch,
                batch["cam2img"],
                batch["cam2lidar"],
                (depth_logits.shape[-2], depth_logits.shape[-1]),
                (batch["images"].shape[-2], batch["images"].shape[-1]),
                self.config.view_transform.depth_bins,
            )
        return EncoderOutput(
            fused=fused,
            image_volume=image_volume,
            lidar_volume=lidar_volume,
            image_occupied=image_occupied,
            lidar_occupied=lidar_occupied,
            depth_logits=depth_logits,
            depth_target=target,
            k_stats=k_stats,
            sky_masks=masks,
            points=points,
            points_batch=points_batch,
        )


def _check_step_batch(batch: dict[str, torch.Tensor], config: ModelConfig) -> None:
    missing = [k for k in STEP_KEYS if k not in batch]
    if missing:
        raise ValueError(f"TacoccEncoder: step batch lacks keys {missing} (use tacocc_core.batch.batch_at)")
    images = batch["images"]
    v = len(config.cameras.names)
    h, w = config.cameras.image_size
    if images.ndim != 5 or images.dtype != torch.uint8 or tuple(images.shape[1:]) != (v, 3, h, w):
        raise ValueError(
            f"TacoccEncoder: batch['images'] must be (B, {v}, 3, {h}, {w}) uint8 for config "
            f"{config.name!r}, got {tuple(images.shape)} {images.dtype}"
        )
    b = images.shape[0]
    for key, shape in (("cam2img", (b, v, 3, 3)), ("cam2lidar", (b, v, 4, 4)), ("camera_valid", (b, v))):
        if tuple(batch[key].shape) != shape:
            raise ValueError(f"TacoccEncoder: batch[{key!r}] must be {shape}, got {tuple(batch[key].shape)}")
    points = batch["points"]
    if points.ndim != 2 or points.shape[1] != 5:
        raise ValueError(f"TacoccEncoder: batch['points'] must be (P, 5), got {tuple(points.shape)}")
    points_batch = batch["points_batch"]
    if tuple(points_batch.shape) != (points.shape[0],):
        raise ValueError(
            f"TacoccEncoder: batch['points_batch'] must be ({points.shape[0]},), got {tuple(points_batch.shape)}"
        )
    if len(points_batch) and (int(points_batch.min()) < 0 or int(points_batch.max()) >= b):
        raise ValueError(
            f"TacoccEncoder: batch['points_batch'] values must lie in 0..{b - 1}, "
            f"got {int(points_batch.min())}..{int(points_batch.max())}"
        )
