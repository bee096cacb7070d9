import pytest
import torch
from torch import nn

from tacocc_core.model.convlstm import ConvLSTM3dCell


@pytest.mark.parametrize(("c_in", "c_h"), [(1, 1), (3, 5), (8, 4)])
def test_1x1x1_cell_is_an_lstm_cell_at_every_voxel(c_in, c_h):
    torch.manual_seed(0)
    cell = ConvLSTM3dCell(c_in, c_h, kernel_size=1).double()
    lstm = nn.LSTMCell(c_in, c_h).double()
    with torch.no_grad():
        w = cell.gate_conv.weight[:, :, 0, 0, 0]
        lstm.weight_ih.copy_(w[:, :c_in])
        lstm.weight_hh.copy_(w[:, c_in:])
        lstm.bias_ih.copy_(cell.gate_conv.bias)
        lstm.bias_hh.zero_()
    x = torch.randn(2, c_in, 3, 4, 2, dtype=torch.float64)
    h = torch.randn(2, c_h, 3, 4, 2, dtype=torch.float64)
    c = torch.randn(2, c_h, 3, 4, 2, dtype=torch.float64)
    h_new, c_new = cell(x, (h, c))

    def voxels(t):  # (B, C, X, Y, Z) -> (B*X*Y*Z, C)
        return t.permute(0, 2, 3, 4, 1).reshape(-1, t.shape[1])

    h_ref, c_ref = lstm(voxels(x), (voxels(h), voxels(c)))
    torch.testing.assert_close(voxels(h_new), h_ref)
    torch.testing.assert_close(voxels(c_new), c_ref)


def test_3x3x3_cell_mixes_neighbours_and_keeps_shape():
    torch.manual_seed(0)
    cell = ConvLSTM3dCell(4, 6)
    x = torch.zeros(1, 4, 5, 5, 3)
    x[0, :, 2, 2, 1] = 1.0
    h, c = cell(x)  # zero state
    assert h.shape == c.shape == (1, 6, 5, 5, 3)
    base, _ = cell(torch.zeros_like(x))
    changed = (h - base).abs().sum(dim=1)[0] > 1e-7
    assert changed[1:4, 1:4, 0:3].all()  # the 3x3x3 neighbourhood of the impulse responds
    assert not changed[0].any() and not changed[4].any()


def test_gradients_reach_the_gate_conv_through_two_steps():
    cell = ConvLSTM3dCell(2, 3)
    x = torch.randn(1, 2, 4, 4, 2)
    state = cell(x)
    h, _ = cell(x, state)
    h.square().sum().backward()
    assert cell.gate_conv.weight.grad is not None and cell.gate_conv.weight.grad.abs().sum() > 0


def test_bad_shapes_are_rejected_with_the_shape():
    cell = ConvLSTM3dCell(2, 3)
    with pytest.raises(ValueError, match=r"\(1, 5, 4, 4, 2\)"):
        cell(torch.zeros(1, 5, 4, 4, 2))
    with pytest.raises(ValueError, match="state of shape"):
        cell(torch.zeros(1, 2, 4, 4, 2), (torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 3, 2, 2, 2)))
    with pytest.raises(ValueError, match="odd"):
        ConvLSTM3dCell(2, 3, kernel_size=2)
