"""What the Gaussians of one frame are rendered against, taken from a training batch (`batch.py` layout).

The Gaussians of frame t live in t's LiDAR frame and carry time relative to t's stamp. They are rendered
into the cameras of frame t and of up to `neighbours` frames before and after it in the window, each at its
own time (so the temporal weights of Eq. 3 decide what each frame sees). A neighbour's cameras are moved
into t's LiDAR frame with the ego poses:  cam2lidar_t = inv(lidar2global_t) @ lidar2global_s @ cam2lidar_s.

The velocity gate of Eq. 4 reads the per-voxel displacement between the keyframe sweeps (time_lag_s = 0) of
frame t and the frame before it (the one after it for the first frame), ego-compensated (`velocity.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tacocc_core.geometry import GridSpec
from tacocc_core.losses.photometric import resize_target
from tacocc_core.model.warp import relative_pose
from tacocc_core.render.rasterize import scale_intrinsics
from tacocc_core.render.velocity import voxel_displacement

KEYFRAME_LAG_S = 1e-6  # points with time_lag_s at most this belong to the keyframe sweep


@dataclass
class RenderTargets:
    """S frames x V cameras at the render size.

    Args:
        images: (S, V, H, W, 3) float32 RGB in [0, 1].
        valid: (S, V, H, W) bool, False on sky and on missing cameras.
        cam2lidar: (S, V, 4, 4) cameras in the LiDAR frame of the rendered Gaussians.
        cam2img: (S, V, 3, 3) intrinsics of the render size.
        times: (S,) float seconds relative to the Gaussians' frame (0 for the frame itself).
    """

    images: torch.Tensor
    valid: torch.Tensor
    cam2lidar: torch.Tensor
    cam2img: torch.Tensor
    times: torch.Tensor

    def __post_init__(self) -> None:
        s, v, h, w, _ = self.images.shape
        expected = {"valid": (s, v, h, w), "cam2lidar": (s, v, 4, 4), "cam2img": (s, v, 3, 3), "times": (s,)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"RenderTargets.{name}: expected {shape}, got {tuple(getattr(self, name).shape)}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.images.shape[2]), int(self.images.shape[3])


@dataclass
class Motion:
    """Voxel motion around one frame, for the velocity gate.

    Args:
        index: (M, 3) int64 voxels occupied in both sweeps (on `grid`).
        displacement: (M, 3) metres, in the frame's LiDAR frame.
        dt: seconds between the two sweeps (> 0).
        grid: the grid of `index`.
    """

    index: torch.Tensor
    displacement: torch.Tensor
    dt: float
    grid: GridSpec


def window_frames(t: int, steps: int, neighbours: int | None) -> list[int]:
    """Frames t - neighbours .. t + neighbours that exist in a window of `steps` frames, t first.

    `neighbours` None: every frame of the window (t first).
    """
    if neighbours is None:
        neighbours = steps
    if neighbours < 0:
        raise ValueError(f"window_frames: neighbours must be >= 0 or None, got {neighbours}")
    return [t] + [s for s in range(t - neighbours, t + neighbours + 1) if s != t and 0 <= s < steps]


def window_targets(
    batch: dict[str, torch.Tensor],
    b: int,
    t: int,
    neighbours: int | None,
    render_scale: float,
    sky: torch.Tensor | None = None,
) -> RenderTargets:
    """The targets of the Gaussians of frame (b, t).

    Args:
        batch: the batch layout of `tacocc_core.batch`.
        b: sequence index.
        t: frame index in the window.
        neighbours: frames before and after t also rendered (config.renderer.neighbour_frames); None: every
            frame of the window.
        render_scale: render size / network image size (config.renderer.render_scale).
        sky: optional (B, T, V, H, W) bool, True on sky pixels (masked out of L_rgb).
    """
    images = batch["images"]
    bsz, steps, views, _, height, width = images.shape
    if not (0 <= b < bsz and 0 <= t < steps):
        raise ValueError(f"window_targets: frame (b={b}, t={t}) outside a batch of {bsz} x {steps} frames")
    if sky is not None and tuple(sky.shape) != (bsz, steps, views, height, width):
        raise ValueError(
            f"window_targets: sky masks must be ({bsz}, {steps}, {views}, {height}, {width}), got {tuple(sky.shape)}"
        )
    out_h, out_w = max(1, round(height * render_scale)), max(1, round(width * render_scale))
    frames = window_frames(t, steps, neighbours)
    poses = batch["lidar2global"][b].to(torch.float64)
    stamps = batch["stamps_ns"][b]
    rgb: list[torch.Tensor] = []
    valid: list[torch.Tensor] = []
    c2l: list[torch.Tensor] = []
    k: list[torch.Tensor] = []
    times: list[float] = []
    for s in frames:
        mask = batch["camera_valid"][b, s][:, None, None].expand(views, height, width)
        if sky is not None:
            mask = mask & ~sky[b, s]
        target, target_valid = resize_target(images[b, s], mask, out_h, out_w)
        assert target_valid is not None  # a mask in gives a mask out
        rgb.append(target)
        assert target_valid is not None  # a mask in, a mask out
        valid.append(target_valid)
        s2t = relative_pose(poses[s], poses[t])  # LiDAR of s -> LiDAR of t
        c2l.append((s2t @ batch["cam2lidar"][b, s].to(torch.float64)).to(torch.float32))
        k.append(scale_intrinsics(batch["cam2img"][b, s].float(), out_w / width, out_h / height))
        times.append((stamps[s] - stamps[t]).item() * 1e-9)
    return RenderTargets(
        images=torch.stack(rgb),
        valid=torch.stack(valid),
        cam2lidar=torch.stack(c2l),
        cam2img=torch.stack(k),
        times=torch.tensor(times, dtype=torch.float32),
    )


def frame_points(batch: dict[str, torch.Tensor], b: int, t: int, keyframe_only: bool = True) -> torch.Tensor:
    """(P, 5) points of frame (b, t), its LiDAR frame; with keyframe_only the merged older sweeps are dropped."""
    steps = batch["stamps_ns"].shape[1]
    pts = batch["points"][batch["points_frame"] == b * steps + t]
    if keyframe_only:
        pts = pts[pts[:, 4] <= KEYFRAME_LAG_S]
    return pts


def frame_interval(batch: dict[str, torch.Tensor], b: int, default_s: float = 0.5) -> float:
    """Median interval between consecutive stamps of sequence b, seconds; `default_s` for a single frame."""
    stamps = batch["stamps_ns"][b]
    if stamps.numel() < 2:
        return default_s
    gaps = (stamps[1:] - stamps[:-1]).double().abs() * 1e-9
    gaps = gaps[gaps > 0]
    return float(gaps.median()) if gaps.numel() else default_s


def frame_motion(batch: dict[str, torch.Tensor], b: int, t: int, grid: GridSpec) -> Motion | None:
    """Voxel displacement of frame t against its previous frame (the next one for t = 0), in t's LiDAR frame.

    For t = 0 the displacement points backwards in time; the gate reads only its norm. None when the window
    has one frame or the two stamps coincide.
    """
    steps = batch["stamps_ns"].shape[1]
    if steps < 2:
        return None
    other = t - 1 if t > 0 else t + 1
    dt = abs((batch["stamps_ns"][b, t] - batch["stamps_ns"][b, other]).item()) * 1e-9
    if not dt > 0:
        return None
    poses = batch["lidar2global"][b].to(torch.float64)
    index, disp = voxel_displacement(
        frame_points(batch, b, other), frame_points(batch, b, t), relative_pose(poses[other], poses[t]), grid
    )
    return Motion(index=index, displacement=disp, dt=dt, grid=grid)
