import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.config import load_preset
from tacocc_core.geometry import make_transform
from tacocc_core.model.temporal import StreamState, TemporalAggregator, reset_reason
from tacocc_core.model.warp import relative_pose, warp_volume

MS = 1_000_000


@pytest.fixture(scope="module")
def tiny():
    return load_preset("tiny")


def trajectory(steps: int, start_yaw: float = 0.0) -> np.ndarray:
    """(steps, 4, 4) lidar2global of a vehicle driving 1 m per frame on a gentle curve."""
    poses, current = [], make_transform(Rotation.from_euler("z", start_yaw).as_matrix(), [10.0, -3.0, 0.5])
    for _ in range(steps):
        poses.append(current)
        current = current @ make_transform(Rotation.from_euler("z", 0.05).as_matrix(), [1.0, 0.1, 0.0])
    return np.stack(poses)


def make(tiny, seed=0, **overrides) -> TemporalAggregator:
    torch.manual_seed(seed)
    config = dataclasses.replace(tiny, temporal=dataclasses.replace(tiny.temporal, **overrides))
    return TemporalAggregator.from_config(config).eval()


def test_window_shapes_at_the_tiny_preset(tiny):
    agg = make(tiny)
    assert agg.grid.shape == (24, 24, 4) and agg.out_channels == tiny.temporal.hidden_channels
    x = torch.randn(2, 3, tiny.fuser.channels, 24, 24, 4)
    out = agg(x, torch.from_numpy(np.stack([trajectory(3), trajectory(3, 1.0)])))
    assert out.shape == (2, 3, tiny.temporal.hidden_channels, 24, 24, 4)
    assert torch.isfinite(out).all()


def test_window_equals_streaming_step_by_step(tiny):
    agg = make(tiny)
    poses = trajectory(4)
    x = torch.randn(1, 4, tiny.fuser.channels, 24, 24, 4)
    stamps = torch.tensor([[0, 100, 200, 300]]) * MS
    with torch.no_grad():
        window = agg(x, torch.from_numpy(poses)[None], stamps)
        state = None
        for t in range(4):
            result = agg.step(x[:, t], poses[t], int(stamps[0, t]), "bag-a", state)
            assert result.reset == ("no previous state" if t == 0 else None)
            torch.testing.assert_close(result.features, window[:, t])
            state = result.state


def test_streaming_step_warps_the_previous_state(tiny):
    agg = make(tiny)
    poses = trajectory(2)
    x0, x1 = torch.randn(2, 1, tiny.fuser.channels, 24, 24, 4)
    with torch.no_grad():
        first = agg.step(x0, poses[0], 0, "s")
        second = agg.step(x1, poses[1], 100 * MS, "s", first.state)
        prev2cur = relative_pose(torch.from_numpy(poses[0]), torch.from_numpy(poses[1]))
        h = warp_volume(first.state.hidden, prev2cur, agg.grid)
        c = warp_volume(first.state.cell, prev2cur, agg.grid)
        expected, _ = agg.cell(x1, (h, c))
        unwarped, _ = agg.cell(x1, (first.state.hidden, first.state.cell))
    torch.testing.assert_close(second.features, expected)
    assert (second.features - unwarped).abs().max() > 1e-3
    np.testing.assert_array_equal(second.state.lidar2global, poses[1])
    assert second.state.stamp_ns == 100 * MS


@pytest.mark.parametrize(
    ("stamp_ns", "stream_id", "expected"),
    [
        (1_100 * MS, "s", None),
        (900 * MS, "s", "time went backwards"),
        (2_500 * MS, "s", "exceeds max_gap_s"),
        (1_100 * MS, "other", "stream changed"),
    ],
)
def test_streaming_state_resets_where_it_must(tiny, stamp_ns, stream_id, expected):
    agg = make(tiny)
    poses = trajectory(2)
    x0, x1 = torch.randn(2, 1, tiny.fuser.channels, 24, 24, 4)
    with torch.no_grad():
        first = agg.step(x0, poses[0], 1_000 * MS, "s")
        result = agg.step(x1, poses[1], stamp_ns, stream_id, first.state)
        fresh = agg.step(x1, poses[1], stamp_ns, stream_id)
    if expected is None:
        assert result.reset is None
        assert (result.features - fresh.features).abs().max() > 1e-3
    else:
        assert expected in result.reset
        torch.testing.assert_close(result.features, fresh.features)
    assert result.state.stamp_ns == stamp_ns and result.state.stream_id == stream_id


def test_reset_reason_covers_non_finite_poses():
    state = StreamState(torch.zeros(1), torch.zeros(1), np.eye(4), 0, "s")
    assert reset_reason(None, np.eye(4), 0, "s", 1.0) == "no previous state"
    assert reset_reason(state, np.eye(4), 0, "s", 1.0) is None  # same stamp again is not going back
    assert reset_reason(state, np.full((4, 4), np.nan), 10, "s", 1.0) == "ego pose not finite"


def test_window_restarts_a_sequence_after_a_gap(tiny):
    agg = make(tiny)
    poses = torch.from_numpy(np.stack([trajectory(3), trajectory(3)]))
    x = torch.randn(2, 3, tiny.fuser.channels, 24, 24, 4)
    stamps = torch.tensor([[0, 100, 200], [0, 5_000, 5_100]]) * MS  # the second jumps 5 s at t=1
    with torch.no_grad():
        out = agg(x, poses, stamps)
        fresh = agg.cell(x[1:, 1])[0]
        kept = agg.cell(x[:1, 1])[0]
    torch.testing.assert_close(out[1, 1], fresh[0])
    assert (out[0, 1] - kept[0]).abs().max() > 1e-3  # the first sequence carried its state


def test_disabled_aggregator_passes_through(tiny):
    agg = make(tiny, enabled=False)
    assert agg.out_channels == tiny.fuser.channels and not list(agg.parameters())
    x = torch.randn(1, 2, tiny.fuser.channels, 24, 24, 4)
    assert agg(x, torch.from_numpy(trajectory(2))[None]) is x
    frame = x[:, 0]
    step = agg.step(frame, np.eye(4), 0)
    assert step.features is frame and step.state is None


def test_gradients_flow_through_the_window(tiny):
    agg = make(tiny)
    x = torch.randn(1, 3, tiny.fuser.channels, 24, 24, 4, requires_grad=True)
    agg(x, torch.from_numpy(trajectory(3))[None])[:, -1].sum().backward()
    assert x.grad[:, 0].abs().sum() > 0  # the last output depends on the first frame


def test_bad_input_is_rejected_with_the_shape(tiny):
    agg = make(tiny)
    with pytest.raises(ValueError, match=r"got \(1, 3, 16, 12, 24, 4\)"):
        agg(torch.zeros(1, 3, 16, 12, 24, 4), torch.eye(4).expand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"lidar2global, got \(1, 2, 4, 4\)"):
        agg(torch.zeros(1, 3, 16, 24, 24, 4), torch.eye(4).expand(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        agg.step(torch.zeros(1, 16, 24, 24, 4), np.eye(3), 0)
