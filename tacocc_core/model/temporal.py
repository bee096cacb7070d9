"""Temporal consistency aggregator (paper Eq. 2): a 3D ConvLSTM over the fused volume F_IL.

    F~_IL^t = ConvLSTM(F_IL^t, warp(F~_IL^{t-1}))

Before each step the previous hidden and cell state are warped into the current LiDAR frame with the
relative ego pose (`warp.warp_volume`), so that the state of a static world stays where the world is.
It runs at the coarse (fusion) resolution.

Two ways to run it:
- training, `forward(volumes, lidar2global, stamps_ns)` over a (B, T, ...) window;
- streaming, `step(volume, lidar2global, stamp_ns, stream_id, state)` one frame at a time with the
  state passed in and returned (`StreamState`), so the caller (the Predictor) owns it. The state is
  dropped (`reset_reason`) when time goes backwards, when the gap to the previous frame exceeds
  `max_gap_s`, when the stream id changes, or when a pose is not finite.
With `enabled=False` both return the input unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tacocc_core.config import ModelConfig
from tacocc_core.geometry import GridSpec
from tacocc_core.model.convlstm import ConvLSTM3dCell
from tacocc_core.model.warp import relative_pose, scaled_grid, warp_volume


@dataclass(frozen=True)
class StreamState:
    """What the aggregator carries from one streamed frame to the next.

    Args:
        hidden, cell: (B, C_h, X, Y, Z) ConvLSTM state, LiDAR frame of the frame at `stamp_ns`.
        lidar2global: (4, 4) float64 ego pose of that frame.
        stamp_ns: its stamp, integer nanoseconds.
        stream_id: the stream it came from (e.g. a bag path or a topic namespace).
    """

    hidden: torch.Tensor
    cell: torch.Tensor
    lidar2global: np.ndarray
    stamp_ns: int
    stream_id: str


@dataclass(frozen=True)
class StepResult:
    """Output of one streamed step.

    Args:
        features: (B, C_out, X, Y, Z) temporally aggregated volume F~_IL.
        state: the state to pass to the next step (None when the aggregator is disabled).
        reset: why the previous state was not used ("no previous state" on the first frame), or None
            when it was carried over.
    """

    features: torch.Tensor
    state: StreamState | None
    reset: str | None


def reset_reason(
    state: StreamState | None, lidar2global: np.ndarray, stamp_ns: int, stream_id: str, max_gap_s: float
) -> str | None:
    """Why a streamed state cannot be carried into the frame at `stamp_ns`, or None if it can."""
    if state is None:
        return "no previous state"
    if stream_id != state.stream_id:
        return f"stream changed from {state.stream_id!r} to {stream_id!r}"
    if stamp_ns < state.stamp_ns:
        return f"time went backwards from {state.stamp_ns} ns to {stamp_ns} ns"
    gap_s = (stamp_ns - state.stamp_ns) * 1e-9
    if gap_s > max_gap_s:
        return f"gap of {gap_s:.3f} s exceeds max_gap_s={max_gap_s}"
    if not (np.isfinite(lidar2global).all() and np.isfinite(state.lidar2global).all()):
        return "ego pose not finite"
    return None


class TemporalAggregator(nn.Module):
    """ConvLSTM over ego-motion-warped state.

    Args:
        in_channels: C of F_IL.
        hidden_channels: C_h of the state, also the output channels when enabled.
        grid: the coarse grid the volumes live on (LiDAR frame), used for warping.
        max_gap_s: larger gaps between consecutive frames reset the state.
        enabled: False passes F_IL through unchanged.
        kernel_size: edge of the ConvLSTM gate convolution.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        grid: GridSpec,
        max_gap_s: float,
        enabled: bool = True,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.max_gap_s = max_gap_s
        self.enabled = enabled
        self.in_channels = in_channels
        self.cell = ConvLSTM3dCell(in_channels, hidden_channels, kernel_size) if enabled else None

    @classmethod
    def from_config(cls, config: ModelConfig) -> TemporalAggregator:
        """Input F_IL with `fuser.channels` on the grid coarsened by `head.coarse_downsample`."""
        return cls(
            in_channels=config.fuser.channels,
            hidden_channels=config.temporal.hidden_channels,
            grid=scaled_grid(config.grid.spec(), config.head.coarse_downsample),
            max_gap_s=config.temporal.max_gap_s,
            enabled=config.temporal.enabled,
        )

    @property
    def out_channels(self) -> int:
        return self.cell.hidden_channels if self.cell is not None else self.in_channels

    def _check(self, volume: torch.Tensor, what: str, lead: str = "B") -> None:
        n = len(lead.split(", "))
        if (
            volume.dim() != 4 + n
            or volume.shape[n] != self.in_channels
            or tuple(volume.shape[n + 1 :]) != self.grid.shape
        ):
            raise ValueError(
                f"TemporalAggregator.{what}: expected ({lead}, {self.in_channels}, "
                f"{', '.join(map(str, self.grid.shape))}) volumes, got {tuple(volume.shape)}"
            )

    def forward(
        self, volumes: torch.Tensor, lidar2global: torch.Tensor, stamps_ns: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run over a training window.

        Args:
            volumes: (B, T, C, X, Y, Z) F_IL of T consecutive frames, each in its own LiDAR frame.
            lidar2global: (B, T, 4, 4) float64 ego poses.
            stamps_ns: (B, T) int64; where given, a sequence whose time goes backwards or jumps by more than
                max_gap_s restarts from a zero state at that frame.

        Returns:
            (B, T, C_out, X, Y, Z) F~_IL, frame t in the LiDAR frame of t.
        """
        self._check(volumes, "forward", lead="B, T")
        b, t = volumes.shape[:2]
        poses = torch.as_tensor(lidar2global, dtype=torch.float64, device=volumes.device)
        if poses.shape != (b, t, 4, 4):
            raise ValueError(f"TemporalAggregator: expected ({b}, {t}, 4, 4) lidar2global, got {tuple(poses.shape)}")
        if self.cell is None:
            return volumes
        outputs = []
        state = None
        for step in range(t):
            x = volumes[:, step]
            if state is not None:
                prev2cur = relative_pose(poses[:, step - 1], poses[:, step])
                keep = torch.isfinite(prev2cur).flatten(1).all(dim=1)
                if stamps_ns is not None:
                    dt = stamps_ns[:, step] - stamps_ns[:, step - 1]
                    keep &= (dt >= 0) & (dt.double() * 1e-9 <= self.max_gap_s)
                prev2cur = torch.where(
                    keep[:, None, None], prev2cur, torch.eye(4, dtype=torch.float64, device=poses.device)
                )
                both = warp_volume(torch.cat(state, dim=1), prev2cur, self.grid)
                mask = keep.to(both.dtype)[:, None, None, None, None]
                state = tuple((both * mask).chunk(2, dim=1))
            state = self.cell(x, state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1)

    def step(
        self,
        volume: torch.Tensor,
        lidar2global: np.ndarray,
        stamp_ns: int,
        stream_id: str = "",
        state: StreamState | None = None,
    ) -> StepResult:
        """Streaming update with the state of the previous call.

        Args:
            volume: (B, C, X, Y, Z) F_IL of the current frame, its LiDAR frame.
            lidar2global: (4, 4) float64 ego pose of the current frame (shared by the B volumes).
            stamp_ns: stamp of the current frame, integer nanoseconds.
            stream_id: which stream the frame belongs to; a change resets the state.
            state: what the previous call returned, or None.
        """
        self._check(volume, "step")
        pose = np.asarray(lidar2global, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"TemporalAggregator.step: expected a (4, 4) lidar2global, got shape {pose.shape}")
        if self.cell is None:
            return StepResult(volume, None, None)
        reason = reset_reason(state, pose, int(stamp_ns), stream_id, self.max_gap_s)
        if reason is None and state is not None and state.hidden.shape[0] != volume.shape[0]:
            reason = f"batch size changed from {state.hidden.shape[0]} to {volume.shape[0]}"
        previous = None
        if reason is None and state is not None:  # (reset_reason gives a reason when there is no state)
            prev2cur = relative_pose(torch.from_numpy(state.lidar2global), torch.from_numpy(pose))
            both = warp_volume(torch.cat([state.hidden, state.cell], dim=1), prev2cur, self.grid)
            previous = tuple(both.chunk(2, dim=1))
        hidden, cell = self.cell(volume, previous)
        new_state = StreamState(hidden.detach(), cell.detach(), pose.copy(), int(stamp_ns), stream_id)
        return StepResult(hidden, new_state, reason)
