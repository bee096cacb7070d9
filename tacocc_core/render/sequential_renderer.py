"""The sequential volume renderer's training step (paper Sec. III-B/C, Eq. 5) for one frame, and for a window.

Per frame (b, t):
1. anchors: LiDAR points of the keyframe sweep inside the grid (<= renderer.lidar_anchors) and the
   centroids of the voxels of F~_IL that count as non-zero (renderer.voxel_anchor_source: "predicted", the
   voxels the coarse head calls occupied; "feature_norm": max |F~_IL| above renderer.voxel_threshold),
   together capped at renderer.max_gaussians (`anchors.py`);
2. Theta^0 = GaussianHead(F~_IL, anchors) (`gaussian_head.py`);
3. velocity gate (Eq. 4): each Gaussian's voxel speed against tau = beta / dt * E[||v||] widens sigma_t;
4. inner fit (`inner_loop.py`): Adam with per-group learning rates on a detached copy of Theta until L_rgb
   converges (renderer.inner_tolerance over renderer.inner_window steps) or renderer.inner_steps, on
   L_rgb = (1 - l) L1 + l D-SSIM over the valid (non-sky) pixels of frame t's cameras and of the other
   frames of the window (renderer.neighbour_frames; None: all of them), each rendered at its own time
   (temporal weights of Eq. 3);
5. L_pc = sum_i ||Theta_i^final - Theta_i^0||_1 (renderer.pc_reduction "sum"; "mean" divides by N,
   `free_params.py`), back-propagated into the head and F~_IL; the caller forms
   (1 - renderer.pc_lambda) L_occ + renderer.pc_lambda L_pc.

The learnable beta of the velocity gate is a rendering parameter: the L_rgb of Theta^final is rendered once
more with tau attached to beta and returned as `l_rgb`, whose only gradient path is beta. Adding it to the
total loss lets beta learn from the photometric loss without L_rgb reaching the network.

Bad input: no LiDAR points -> voxel anchors only; no non-zero voxels (or non-finite features) -> the step is
skipped with a logged reason and both losses are 0, still connected to the features and every parameter;
Gaussians that no camera sees -> black renders, a finite L_rgb and zero gradients.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from tacocc_core.config import ModelConfig, RendererConfig
from tacocc_core.geometry import GridSpec
from tacocc_core.losses.photometric import photometric_loss
from tacocc_core.model.warp import scaled_grid
from tacocc_core.render.anchors import lidar_anchors, masked_voxel_anchors, predicted_voxel_mask, voxel_anchors
from tacocc_core.render.free_params import FreeParams, free_to_gaussians, parameter_consistency
from tacocc_core.render.gaussian_head import GaussianHead
from tacocc_core.render.gaussians import Gaussians
from tacocc_core.render.inner_loop import InnerSchedule, optimise_gaussians
from tacocc_core.render.rasterize import Backend, render_views
from tacocc_core.render.targets import Motion, RenderTargets, frame_interval, frame_motion, frame_points, window_targets
from tacocc_core.render.temporal import VelocityGate, velocity_threshold, widen_bandwidth
from tacocc_core.render.velocity import sample_displacement

log = logging.getLogger(__name__)


@dataclass
class RenderResult:
    """One frame's renderer step.

    Args:
        l_pc: scalar L_pc (gradients into the head and F~_IL).
        l_rgb: scalar L_rgb of Theta^final (gradient into the velocity gate's beta only).
        rgb_steps: L_rgb of each Theta the inner fit evaluated (Theta^0 first), then of Theta^final;
            empty when skipped.
        inner_steps: parameter updates the inner fit made.
        converged: True when the inner fit met its convergence rule (False: step cap or stopped).
        num_lidar: LiDAR-anchored Gaussians.
        num_voxel: voxel-anchored Gaussians.
        num_moving: Gaussians whose sigma_t the velocity gate widened.
        anchors: (N, 3) anchor centres (LiDAR anchors first), LiDAR frame, detached.
        widening: (N,) factor the velocity gate applied to each Gaussian's sigma_t (1 = static), detached.
        skipped: why the frame was not rendered, or None.
        stopped: why the inner loop ended early, or None.
        images: (S*V, H, W, 3) RGB and (S*V, H, W) depth of Theta^final, detached, when asked for.
    """

    l_pc: torch.Tensor
    l_rgb: torch.Tensor
    rgb_steps: list[float] = field(default_factory=list)
    inner_steps: int = 0
    converged: bool = False
    num_lidar: int = 0
    num_voxel: int = 0
    num_moving: int = 0
    anchors: torch.Tensor | None = None
    widening: torch.Tensor | None = None
    skipped: str | None = None
    stopped: str | None = None
    images: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_gaussians(self) -> int:
        return self.num_lidar + self.num_voxel


def render_into_targets(
    gaussians: Gaussians, targets: RenderTargets, backend: Backend = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render into the S x V target cameras, frame s at time targets.times[s].

    Returns:
        rgb (S*V, H, W, 3) and depth (S*V, H, W), views ordered frame by frame.
    """
    height, width = targets.size
    rgb, depth = [], []
    for s in range(targets.times.shape[0]):
        c2l = targets.cam2lidar[s].to(gaussians.device)
        k = targets.cam2img[s].to(gaussians.device)
        out_rgb, out_depth, _ = render_views(
            gaussians, c2l, k, width, height, t=targets.times[s].item(), backend=backend
        )
        rgb.append(out_rgb)
        depth.append(out_depth)
    return torch.cat(rgb), torch.cat(depth)


class SequentialRenderer(nn.Module):
    """Gaussian parameter net + velocity gate + the two-phase update of Eq. 5.

    Args:
        head: the parameter net.
        gate: the velocity gate (holds the learnable beta).
        settings: config.renderer.
        grid: the coarse grid of F~_IL (LiDAR frame).
        backend: rasteriser backend of `render_views` ("auto": gsplat on CUDA, ours elsewhere).
    """

    def __init__(
        self,
        head: GaussianHead,
        gate: VelocityGate,
        settings: RendererConfig,
        grid: GridSpec,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        self.head = head
        self.gate = gate
        self.settings = settings
        self.grid = grid
        self.backend = backend

    @classmethod
    def from_config(cls, config: ModelConfig, backend: Backend = "auto") -> SequentialRenderer:
        """F~_IL with temporal.hidden_channels on the grid coarsened by head.coarse_downsample."""
        grid = scaled_grid(config.grid.spec(), config.head.coarse_downsample)
        r = config.renderer
        channels = config.temporal.hidden_channels if config.temporal.enabled else config.fuser.channels
        head = GaussianHead(channels, r.head_channels, grid, r.sh_degree, r.lidar_offset_max, r.voxel_offset_max)
        return cls(head, VelocityGate.from_config(r), r, grid, backend)

    def zero_loss(self, features: torch.Tensor) -> torch.Tensor:
        """A 0 loss connected to the features and every parameter (finite even for non-finite features)."""
        total = torch.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0).sum() * 0.0
        for p in self.parameters():
            total = total + p.sum() * 0.0
        return total

    def _skip(self, features: torch.Tensor, reason: str) -> RenderResult:
        log.warning("Gaussian renderer skipped a frame: %s", reason)
        zero = self.zero_loss(features)
        return RenderResult(l_pc=zero, l_rgb=zero.clone(), skipped=reason)

    def forward(
        self,
        features: torch.Tensor,
        points: torch.Tensor,
        targets: RenderTargets,
        motion: Motion | None = None,
        time_scale: float = 0.5,
        generator: torch.Generator | None = None,
        return_images: bool = False,
        voxel_candidates: tuple[torch.Tensor, torch.Tensor] | None = None,
        schedule: InnerSchedule | None = None,
    ) -> RenderResult:
        """The renderer step of one frame.

        Args:
            features: (C_h, X, Y, Z) F~_IL of the frame, coarse grid, its LiDAR frame.
            points: (P, 3+) LiDAR points of the frame, its LiDAR frame (may be empty).
            targets: the images the Gaussians are rendered against (`targets.window_targets`).
            motion: voxel motion for the velocity gate, or None (no Gaussian counts as moving).
            time_scale: frame interval in seconds (scales mu_t and sigma_t of the head).
            generator: random source of the LiDAR subsample.
            return_images: keep the final RGB and depth renders in the result.
            voxel_candidates: ((X, Y, Z) bool voxels that may hold a voxel anchor, (X, Y, Z) ranking score),
                from `predicted_voxel_mask`; None: the "feature_norm" reading of `features` itself.
            schedule: the inner fit; None: `self.schedule(targets)`.
        """
        if features.ndim != 4 or tuple(features.shape[1:]) != tuple(self.grid.shape):
            raise ValueError(
                f"SequentialRenderer: features must be (C, {', '.join(map(str, self.grid.shape))}), "
                f"got {tuple(features.shape)}"
            )
        if points.ndim != 2 or points.shape[1] < 3:
            raise ValueError(f"SequentialRenderer: points must be (P, 3+), got {tuple(points.shape)}")
        r = self.settings
        # Host sync: a frame whose features are not finite must not produce a loss.
        if not bool(torch.isfinite(features.detach()).all()):
            return self._skip(features, "non-finite values in F~_IL")
        if not bool((features.detach().abs() > r.voxel_threshold).any()):  # host sync
            return self._skip(features, f"no non-zero voxels in F~_IL (every |feature| <= {r.voxel_threshold})")
        lidar = lidar_anchors(points.to(features.device), self.grid, min(r.lidar_anchors, r.max_gaussians), generator)
        budget = r.max_gaussians - lidar.shape[0]
        if voxel_candidates is None:
            voxel, _ = voxel_anchors(features, self.grid, budget, r.voxel_threshold)
        else:
            mask, score = voxel_candidates
            voxel, _ = masked_voxel_anchors(mask.to(features.device), score.to(features.device), self.grid, budget)
            voxel = voxel.to(features.dtype)
        if lidar.shape[0] + voxel.shape[0] == 0:
            return self._skip(features, "no anchors (no LiDAR point in the grid and no occupied voxel)")
        anchors = torch.cat([lidar.to(features.dtype), voxel])
        is_lidar = torch.arange(anchors.shape[0], device=anchors.device) < lidar.shape[0]
        theta0 = self.head(features, anchors, is_lidar, time_scale)

        speed, scene = self._motion(anchors, motion, features)
        dt = motion.dt if motion is not None else 1.0
        tau = velocity_threshold(scene, self.gate.beta, dt)
        images = targets.images.flatten(0, 1).to(features.device)
        valid = targets.valid.flatten(0, 1).to(features.device)

        def l_rgb_of(theta: FreeParams, tau_value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            gaussians = free_to_gaussians(theta)
            gaussians.sigma_t = widen_bandwidth(
                gaussians.sigma_t, speed, tau_value, self.gate.widen, self.gate.softness
            )
            rgb, depth = render_into_targets(gaussians, targets, self.backend)
            return photometric_loss(rgb, images, valid, r.dssim_lambda), rgb, depth

        inner = optimise_gaussians(theta0, lambda th: l_rgb_of(th, tau.detach())[0], schedule or self.schedule(targets))
        l_rgb, rgb, depth = l_rgb_of(inner.theta, tau)
        l_pc = parameter_consistency(inner.theta, theta0, r.pc_reduction)
        # Host sync: a non-finite loss must not be back-propagated into the weights.
        if not bool(torch.isfinite(l_pc) & torch.isfinite(l_rgb)):
            return self._skip(features, f"non-finite loss (L_pc={l_pc.item()}, L_rgb={l_rgb.item()})")
        with torch.no_grad():
            num_moving = int((speed > tau).sum())
            widening = widen_bandwidth(torch.ones_like(speed), speed, tau, self.gate.widen, self.gate.softness)
        return RenderResult(
            l_pc=l_pc,
            l_rgb=l_rgb,
            rgb_steps=inner.losses + [l_rgb.item()],
            inner_steps=inner.steps,
            converged=inner.converged,
            num_lidar=int(lidar.shape[0]),
            num_voxel=int(voxel.shape[0]),
            num_moving=num_moving,
            anchors=anchors.detach(),
            widening=widening,
            stopped=inner.stopped,
            images=(rgb.detach(), depth.detach()) if return_images else None,
        )

    def schedule(self, targets: RenderTargets) -> InnerSchedule:
        """The inner fit of config.renderer for these targets.

        Scene extent: the grid's half diagonal; duration: the span of the targets' times.
        """
        times = targets.times
        duration = float(times.max() - times.min()) if times.numel() else 0.0
        return InnerSchedule.from_config(self.settings, self.extent_m, duration)

    @property
    def extent_m(self) -> float:
        """Half the diagonal of the grid's box, metres (the scene extent of the means' learning rate)."""
        size = [n * v for n, v in zip(self.grid.shape, self.grid.voxel_size, strict=True)]
        return 0.5 * float(sum(s * s for s in size)) ** 0.5

    def _motion(
        self, anchors: torch.Tensor, motion: Motion | None, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) speed of each anchor's voxel, m/s, and (M,) displacement norms of the scene, metres."""
        if motion is None or motion.index.shape[0] == 0:
            return torch.zeros(anchors.shape[0], dtype=like.dtype, device=like.device), like.new_zeros(0)
        index = motion.index.to(like.device)
        disp = motion.displacement.to(device=like.device, dtype=like.dtype)
        speed = sample_displacement(anchors.detach(), index, disp, motion.grid) / motion.dt
        return speed, disp.norm(dim=1)


@dataclass
class WindowResult:
    """Renderer step over several frames: the mean losses of the frames that were rendered.

    Args:
        l_pc: mean L_pc (0, still connected, when every frame was skipped).
        l_rgb: mean L_rgb of Theta^final (gradient into beta only).
        frames: ((b, t), result) per frame, in the order rendered.
    """

    l_pc: torch.Tensor
    l_rgb: torch.Tensor
    frames: list[tuple[tuple[int, int], RenderResult]]


def render_window(
    renderer: SequentialRenderer,
    features: torch.Tensor,
    batch: dict[str, torch.Tensor],
    frames: list[tuple[int, int]] | None = None,
    sky: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_images: bool = False,
    coarse_logits: torch.Tensor | None = None,
) -> WindowResult:
    """Run the renderer step on frames of a training batch.

    Args:
        renderer: the renderer.
        features: (B, T, C_h, X, Y, Z) F~_IL (TemporalAggregator output), frame t in its LiDAR frame.
        batch: the batch layout of `tacocc_core.batch`.
        frames: (b, t) pairs to render; None = every frame of the window.
        sky: optional (B, T, V, H, W) bool sky masks (True on sky) at the network image size.
        generator: random source of the LiDAR subsample.
        return_images: keep the rendered images of the first frame that is rendered (not skipped).
        coarse_logits: (B, T, K, X, Y, Z) coarse-head logits, needed when renderer.voxel_anchor_source is
            "predicted" (they choose and rank the voxel anchors).
    """
    if features.ndim != 6 or tuple(features.shape[:2]) != tuple(batch["stamps_ns"].shape):
        raise ValueError(
            f"render_window: features must be (B, T, C, X, Y, Z) with (B, T) = {tuple(batch['stamps_ns'].shape)}, "
            f"got {tuple(features.shape)}"
        )
    bsz, steps = features.shape[:2]
    if frames is None:
        frames = [(b, t) for b in range(bsz) for t in range(steps)]
    r = renderer.settings
    results = []
    have_images = False
    for b, t in frames:
        targets = window_targets(batch, b, t, r.neighbour_frames, r.render_scale, sky)
        want_images = return_images and not have_images
        candidates = None
        if r.voxel_anchor_source == "predicted":
            candidates = predicted_voxel_mask(None if coarse_logits is None else coarse_logits[b, t])
        result = renderer(
            features[b, t],
            frame_points(batch, b, t),
            targets,
            motion=frame_motion(batch, b, t, renderer.grid),
            time_scale=frame_interval(batch, b),
            generator=generator,
            return_images=want_images,
            voxel_candidates=candidates,
        )
        have_images = have_images or (want_images and result.skipped is None and result.images is not None)
        results.append(((b, t), result))
    done = [res for _, res in results if res.skipped is None]
    if not done:
        zero = renderer.zero_loss(features)
        return WindowResult(zero, zero.clone(), results)
    l_pc = torch.stack([res.l_pc for res in done]).mean()
    l_rgb = torch.stack([res.l_rgb for res in done]).mean()
    return WindowResult(l_pc, l_rgb, results)
