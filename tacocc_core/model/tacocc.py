"""TACOcc: encoder (image + LiDAR + adaptive fuser) -> ConvLSTM temporal aggregator -> cascaded head.

Two ways to run it, both over the `tacocc_core.batch` layout:
- `forward_sequence(batch)`: a (B, T) training window, the aggregator over the T fused volumes;
- `forward_step(step_batch, lidar2global, stamp_ns, stream_id, state)`: one frame with a streamed
  aggregator state (the Predictor and the ROS node run this way).
The Gaussian renderer is a training-time module outside this class (tacocc_core.render).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tacocc_core.batch import batch_at
from tacocc_core.config import ModelConfig
from tacocc_core.model.encoder import EncoderOutput, TacoccEncoder
from tacocc_core.model.occupancy_head import CascadedOccupancyHead, HeadOutput
from tacocc_core.model.temporal import StepResult, StreamState, TemporalAggregator
from tacocc_core.timing import NULL_TIMER, StageTimer


@dataclass
class SequenceOutput:
    """Outputs of a (B, T) window.

    Args:
        encoder: T encoder outputs (frame t of every sequence).
        smoothed: (B, T, C_h, Xc, Yc, Zc) F~_IL, frame t in its own LiDAR frame.
        heads: T head outputs.
    """

    encoder: list[EncoderOutput]
    smoothed: torch.Tensor
    heads: list[HeadOutput]


@dataclass
class StepOutput:
    """Outputs of one streamed frame: the encoder's, the aggregator's (with the new state) and the head's."""

    encoder: EncoderOutput
    temporal: StepResult
    head: HeadOutput


class TACOcc(nn.Module):
    """The whole occupancy network of a ModelConfig."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = TacoccEncoder(config)
        self.temporal = TemporalAggregator.from_config(config)
        self.head = CascadedOccupancyHead.from_config(config, self.temporal.out_channels)

    def forward_sequence(self, batch: dict[str, torch.Tensor], step: int | None = None) -> SequenceOutput:
        """batch: the (B, T) layout of `frames_to_batch`; `step` sets the fuser's Gumbel temperature."""
        steps = batch["stamps_ns"].shape[1]
        encoded = [self.encoder(batch_at(batch, t), step=step) for t in range(steps)]
        fused = torch.stack([e.fused for e in encoded], dim=1)
        smoothed = self.temporal(fused, batch["lidar2global"], batch["stamps_ns"])
        heads = [self.head(smoothed[:, t]) for t in range(steps)]
        return SequenceOutput(encoded, smoothed, heads)

    def forward_step(
        self,
        step_batch: dict[str, torch.Tensor],
        lidar2global: np.ndarray,
        stamp_ns: int,
        stream_id: str = "",
        state: StreamState | None = None,
        timer: StageTimer = NULL_TIMER,
    ) -> StepOutput:
        """One frame (`batch_at` layout, B = 1 for a stream) with the previous aggregator state."""
        encoded = self.encoder(step_batch, timer=timer)
        with timer.stage("temporal"):
            temporal = self.temporal.step(encoded.fused, lidar2global, stamp_ns, stream_id, state)
        with timer.stage("head"):
            head = self.head(temporal.features)
        return StepOutput(encoded, temporal, head)
