"""A 3D convolutional LSTM cell (Shi et al. 2015, in 3D): the recurrence of the temporal aggregator.

The four gates come from one convolution over the concatenated input and hidden state, in the gate
order input, forget, cell candidate, output (the order `torch.nn.LSTMCell` uses, so a 1x1x1 cell is
an `LSTMCell` applied at every voxel, which is how the test checks it):

    i, f, g, o = split(conv([x, h]))
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h' = sigmoid(o) * tanh(c')
"""

from __future__ import annotations

import torch
from torch import nn


def convlstm_step(
    x: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, gate_conv: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ConvLSTM update.

    Args:
        x: (B, C_in, X, Y, Z) input volume.
        hidden: (B, C_h, X, Y, Z) previous hidden state.
        cell: (B, C_h, X, Y, Z) previous cell state.
        gate_conv: maps (B, C_in + C_h, X, Y, Z) to (B, 4 C_h, X, Y, Z), gates in order i, f, g, o.

    Returns:
        (hidden, cell) after the step, each (B, C_h, X, Y, Z).
    """
    gates = gate_conv(torch.cat([x, hidden], dim=1))
    i, f, g, o = gates.chunk(4, dim=1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    hidden = torch.sigmoid(o) * torch.tanh(cell)
    return hidden, cell


class ConvLSTM3dCell(nn.Module):
    """ConvLSTM cell over (B, C, X, Y, Z) volumes; the state is passed in and returned, never stored.

    Args:
        in_channels: C_in of the input volume.
        hidden_channels: C_h of the hidden and cell state.
        kernel_size: odd edge of the cubic gate convolution (same padding).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvLSTM3dCell: kernel_size must be odd, got {kernel_size}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.gate_conv = nn.Conv3d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )
        bias = self.gate_conv.bias
        assert bias is not None  # nn.Conv3d has a bias unless bias=False
        with torch.no_grad():  # forget-gate bias 1: the state is kept by default early in training
            bias.zero_()
            bias[hidden_channels : 2 * hidden_channels] = 1.0

    def zero_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden, cell) of zeros matching input x: (B, C_in, X, Y, Z)."""
        b, _, *spatial = x.shape
        zeros = x.new_zeros(b, self.hidden_channels, *spatial)
        return zeros, zeros.clone()

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C_in, X, Y, Z); state: (hidden, cell) or None for zeros -> new (hidden, cell)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"ConvLSTM3dCell: expected (B, {self.in_channels}, X, Y, Z) input, got {tuple(x.shape)}")
        hidden, cell = self.zero_state(x) if state is None else state
        if hidden.shape[2:] != x.shape[2:] or hidden.shape[0] != x.shape[0]:
            raise ValueError(
                f"ConvLSTM3dCell: state of shape {tuple(hidden.shape)} does not match input {tuple(x.shape)}"
            )
        return convlstm_step(x, hidden, cell, self.gate_conv)
