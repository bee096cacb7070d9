import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.geometry import GridSpec, invert_transform, make_transform, transform_points
from tacocc_core.model.warp import relative_pose, scaled_grid, warp_volume
from tacocc_core.reference.warp import warp_volume_reference

SMALL = GridSpec.from_ranges((-4.0, 4.0), (-3.0, 3.0), (-1.0, 1.0), 0.5)  # 16 x 12 x 4


def pose(yaw=0.0, pitch=0.0, roll=0.0, t=(0.0, 0.0, 0.0)):
    return make_transform(Rotation.from_euler("zyx", [yaw, pitch, roll]).as_matrix(), t)


@pytest.mark.parametrize(
    "prev2cur",
    [
        pose(),
        pose(t=(0.3, -0.7, 0.2)),
        pose(yaw=0.4),
        pose(yaw=-1.1, t=(1.2, 0.4, 0.0)),
        pose(yaw=0.2, pitch=0.05, roll=-0.03, t=(-0.6, 0.9, 0.25)),
    ],
)
def test_matches_the_per_voxel_reference(prev2cur):
    volume = np.random.default_rng(0).normal(size=(3, *SMALL.shape))
    fast = warp_volume(torch.from_numpy(volume)[None], torch.from_numpy(prev2cur), SMALL)[0].numpy()
    np.testing.assert_allclose(fast, warp_volume_reference(volume, prev2cur, SMALL), atol=1e-9)


def test_whole_voxel_translation_is_an_exact_shift_with_zeros_behind():
    volume = torch.randn(1, 2, *SMALL.shape, dtype=torch.float64)
    out = warp_volume(volume, torch.from_numpy(pose(t=(1.0, -0.5, 0.0))), SMALL)
    # +1 m in x = +2 voxels, -0.5 m in y = -1 voxel: cur[i, j] = prev[i - 2, j + 1]
    torch.testing.assert_close(out[..., 2:, :-1, :], volume[..., :-2, 1:, :])
    assert out[..., :2, :, :].abs().max() < 1e-12 and out[..., :, -1, :].abs().max() < 1e-12


def test_quarter_turn_on_a_square_grid_is_rot90():
    spec = GridSpec.from_ranges((-2.0, 2.0), (-2.0, 2.0), (-1.0, 1.0), 0.5)
    volume = torch.randn(1, 1, *spec.shape, dtype=torch.float64)
    out = warp_volume(volume, torch.from_numpy(pose(yaw=np.pi / 2)), spec)
    # a point at +x in the previous frame lies at +y in the current one
    torch.testing.assert_close(out, torch.rot90(volume, k=1, dims=(2, 3)))


def blobs(spec: GridSpec, lidar2global: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """A static world of Gaussian blobs (global frame) as seen on the grid of a vehicle at lidar2global."""
    points = transform_points(lidar2global, spec.centers().reshape(-1, 3))
    d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * 1.5**2)).sum(1).reshape(spec.shape)


def test_a_static_world_lines_up_after_the_ego_moves_and_turns():
    spec = GridSpec.from_ranges((-12.0, 12.0), (-12.0, 12.0), (-2.0, 2.0), 0.5)
    prev = pose(yaw=0.3, t=(100.0, 50.0, 1.0))
    around = np.array([[3.0, 2.0, 0.0], [-4.0, 5.0, 0.5], [6.0, -5.0, -0.5], [-2.0, -6.0, 0.0]])
    centres = transform_points(prev, around)  # global frame, near the vehicle
    cur = prev @ pose(yaw=0.15, t=(1.7, 0.6, 0.0))  # the vehicle drove 1.8 m and turned 8.6 degrees
    seen_prev, seen_cur = blobs(spec, prev, centres), blobs(spec, cur, centres)
    prev2cur = relative_pose(torch.from_numpy(prev), torch.from_numpy(cur))
    np.testing.assert_allclose(prev2cur.numpy(), invert_transform(cur) @ prev, atol=1e-9)
    warped = warp_volume(torch.from_numpy(seen_prev)[None, None], prev2cur, spec)[0, 0].numpy()
    inner = (slice(6, -6), slice(6, -6), slice(1, -1))  # away from the edges the previous grid did not see
    aligned = np.abs(warped - seen_cur)[inner].max()
    unwarped = np.abs(seen_prev - seen_cur)[inner].max()
    assert aligned < 0.03, aligned  # trilinear interpolation error of blobs 3 voxels wide
    assert unwarped > 10 * aligned


def test_bf16_volumes_keep_their_dtype_and_stay_close():
    volume = torch.randn(2, 4, *SMALL.shape)
    p = torch.from_numpy(np.stack([pose(yaw=0.3), pose(t=(0.4, 0.1, 0.0))]))
    out32 = warp_volume(volume, p, SMALL)
    out16 = warp_volume(volume.bfloat16(), p, SMALL)
    assert out16.dtype == torch.bfloat16
    torch.testing.assert_close(out16.float(), out32, atol=0.05, rtol=0.02)


def test_scaled_grid_keeps_the_extent():
    coarse = scaled_grid(GridSpec.from_ranges((-50.0, 50.0), (-50.0, 50.0), (-5.0, 3.0), 0.5), 2)
    assert coarse.shape == (100, 100, 8) and coarse.voxel_size == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(coarse.upper, [50.0, 50.0, 3.0])
    with pytest.raises(ValueError, match="not divisible"):
        scaled_grid(SMALL, 3)


def test_bad_input_is_rejected_with_the_value():
    volume = torch.zeros(1, 1, *SMALL.shape)
    with pytest.raises(ValueError, match=r"\(8, 8, 8\) differs"):
        warp_volume(torch.zeros(1, 1, 8, 8, 8), torch.eye(4), SMALL)
    with pytest.raises(ValueError, match=r"\(3, 4, 4\)"):
        warp_volume(volume, torch.eye(4).expand(3, 4, 4), SMALL)
    bad = torch.eye(4, dtype=torch.float64)
    bad[0, 3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        warp_volume(volume, bad, SMALL)
