import dataclasses

import numpy as np
import pytest
import torch

from tacocc_core.config import load_preset
from tacocc_core.geometry import GridSpec, invert_transform, project_points
from tacocc_core.model.grids import coarse_grid
from tacocc_core.model.lss import (
    LSSViewTransform,
    depth_bin_centers,
    depth_loss,
    feature_pixels,
    frustum_points,
    lidar_depth_target,
    voxel_pool,
)
from tacocc_core.synthetic_batch import camera_rig

TINY = load_preset("tiny")


def voxel_pool_reference(xyz, batch, feats, grid: GridSpec, batch_size):
    out = np.zeros((batch_size, feats.shape[1], *grid.shape), dtype=np.float64)
    for p, b, f in zip(xyz.tolist(), batch.tolist(), feats.tolist(), strict=True):
        if not all(np.isfinite(p)):
            continue
        idx = [int(np.floor((p[i] - grid.lower[i]) / grid.voxel_size[i])) for i in range(3)]
        if all(0 <= idx[i] < grid.shape[i] for i in range(3)):
            out[b, :, idx[0], idx[1], idx[2]] += f
    return out


@pytest.mark.parametrize(("seed", "n", "batch_size"), [(0, 50, 1), (1, 400, 2), (2, 0, 2)])
def test_voxel_pool_matches_reference(seed, n, batch_size):
    gen = torch.Generator().manual_seed(seed)
    grid = GridSpec.from_ranges((-4, 4), (-4, 4), (-2, 2), 1.0)
    xyz = (torch.rand(n, 3, generator=gen) - 0.5) * 12  # some outside the grid
    if n:
        xyz[0] = torch.tensor([float("nan"), 0.0, 0.0])
    batch = torch.randint(0, batch_size, (n,), generator=gen)
    feats = torch.randn(n, 3, generator=gen)
    got = voxel_pool(xyz, batch, feats.T.contiguous(), grid, batch_size)
    np.testing.assert_allclose(got.numpy(), voxel_pool_reference(xyz, batch, feats, grid, batch_size), atol=1e-5)


def test_frustum_points_project_back_to_their_pixels():
    cam2img, cam2lidar = camera_rig(TINY)
    pixels = feature_pixels((8, 22), TINY.cameras.image_size)
    depths = depth_bin_centers(TINY.view_transform.depth_bins)[:5]
    pts = frustum_points(cam2img[None], cam2lidar[None], pixels, depths)  # (1, V, D, h, w, 3)
    for v in range(len(TINY.cameras.names)):
        lidar2cam = invert_transform(cam2lidar[v].double().numpy())
        uv, depth = project_points(pts[0, v].reshape(-1, 3).double().numpy(), lidar2cam, cam2img[v].double().numpy())
        expect_uv = pixels.expand(len(depths), 8, 22, 2).reshape(-1, 2).numpy()
        np.testing.assert_allclose(uv, expect_uv, atol=1e-3)
        np.testing.assert_allclose(depth, depths[:, None, None].expand(-1, 8, 22).reshape(-1).numpy(), atol=1e-4)


def test_depth_bins_and_pixels():
    assert depth_bin_centers((1.0, 60.0, 0.5)).shape == (118,)
    assert depth_bin_centers((1.0, 3.0, 1.0)).tolist() == [1.5, 2.5]
    with pytest.raises(ValueError, match="gives no bin"):
        depth_bin_centers((1.0, 1.1, 1.0))
    px = feature_pixels((2, 4), (8, 16))  # stride 4: cell centres at 1.5, 5.5, ...
    assert px[0, 0].tolist() == [1.5, 1.5] and px[1, 3].tolist() == [13.5, 5.5]


def test_lidar_depth_target_takes_the_nearest_point_per_cell():
    cam2img, cam2lidar = camera_rig(TINY)
    h, w = TINY.cameras.image_size
    bins = TINY.view_transform.depth_bins
    front = TINY.cameras.names.index("CAM_FRONT")
    cam2lidar_np = cam2lidar[front].double().numpy()
    # Two points on the ray through the centre of cell (4, 11), at 10.2 m and 20.7 m; one behind the camera.
    u, v = feature_pixels((8, 22), (h, w))[4, 11].tolist()
    ray = np.linalg.inv(cam2img[front].double().numpy()) @ np.array([u, v, 1.0])
    cam_pts = np.stack([ray * 10.2, ray * 20.7, -ray * 5.0])
    lidar_pts = cam_pts @ cam2lidar_np[:3, :3].T + cam2lidar_np[:3, 3]
    points = torch.zeros(3, 5)
    points[:, :3] = torch.from_numpy(lidar_pts).float()
    target = lidar_depth_target(
        points, torch.zeros(3, dtype=torch.int64), cam2img[None], cam2lidar[None], (8, 22), (h, w), bins
    )
    assert target.shape == (1, len(TINY.cameras.names), 8, 22)
    assert target[0, front, 4, 11].item() == int((10.2 - bins[0]) // bins[2])
    assert (target[0, front] >= 0).sum() == 1  # the far point is hidden behind the near one
    back = TINY.cameras.names.index("CAM_BACK")
    assert (target[0, back] >= 0).sum() == 1  # the point behind CAM_FRONT is in front of CAM_BACK


def test_depth_loss_ignores_cells_without_target():
    logits = torch.zeros(1, 2, 4, 3, 3, requires_grad=True)
    target = torch.full((1, 2, 3, 3), -1)
    assert depth_loss(logits, target).item() == 0.0
    target[0, 1, 2, 2] = 3
    loss = depth_loss(logits, target)
    assert loss.item() == pytest.approx(np.log(4))
    loss.backward()
    assert logits.grad[0, 0].abs().sum() == 0 and logits.grad[0, 1, :, 2, 2].abs().sum() > 0


def test_view_transform_shapes_and_missing_cameras():
    config = dataclasses.replace(TINY)
    torch.manual_seed(0)
    lss = LSSViewTransform(config).eval()
    cam2img, cam2lidar = camera_rig(config)
    v = len(config.cameras.names)
    feats = torch.randn(2 * v, config.image_backbone.fpn_channels, 8, 22)
    valid = torch.ones(2, v, dtype=torch.bool)
    valid[1] = False  # the second sample has no camera at all
    with torch.no_grad():
        vol, occupied, depth_logits = lss(
            feats, cam2img.expand(2, v, 3, 3), cam2lidar.expand(2, v, 4, 4), valid, (64, 176)
        )
    assert vol.shape == (2, config.view_transform.channels, *coarse_grid(config).shape)
    assert depth_logits.shape == (2, v, 34, 8, 22)
    assert occupied[0].any() and not occupied[1].any() and (vol[1] == 0).all()
    assert (vol[0].abs().sum(0)[~occupied[0]] == 0).all()


def test_inference_reuses_the_frustum_voxels_of_an_unchanged_rig():
    """Eval mode without gradients keeps the frustum's voxel indices of the last calibration; a changed
    calibration, training or gradients compute them afresh, and every answer equals a fresh module's."""
    torch.manual_seed(0)
    lss = LSSViewTransform(TINY).eval()
    cam2img, cam2lidar = (m[None] for m in camera_rig(TINY))  # (1, V, ...)
    v = len(TINY.cameras.names)
    feats = torch.randn(v, TINY.image_backbone.fpn_channels, 8, 22)
    valid = torch.ones(1, v, dtype=torch.bool)

    def fresh(k, e):
        other = LSSViewTransform(TINY).eval()
        other.load_state_dict(lss.state_dict())
        with torch.no_grad():
            return other(feats, k, e, valid, (64, 176))[0]

    with torch.no_grad():
        first = lss(feats, cam2img, cam2lidar, valid, (64, 176))[0]
        kept = lss._frustum_cache[3]
        again = lss(feats, cam2img.clone(), cam2lidar.clone(), valid, (64, 176))[0]
        assert lss._frustum_cache[3] is kept  # reused
        moved = cam2lidar.clone()
        moved[..., 0, 3] += 1.0  # the rig one metre along x
        shifted = lss(feats, cam2img, moved, valid, (64, 176))[0]
        assert lss._frustum_cache[3] is not kept
    assert torch.equal(first, again) and torch.equal(first, fresh(cam2img, cam2lidar))
    assert torch.equal(shifted, fresh(cam2img, moved)) and not torch.equal(shifted, first)
    with_grad = feats.clone().requires_grad_()
    volume = lss(with_grad, cam2img, cam2lidar, valid, (64, 176))[0]  # gradients on: nothing kept
    assert lss._frustum_cache is None and torch.equal(volume.detach(), first)  # the autograd path, same numbers
    volume.sum().backward()
    assert with_grad.grad.abs().sum() > 0
    with torch.no_grad():
        lss.train()(feats, cam2img, cam2lidar, valid, (64, 176))
    assert lss._frustum_cache is None


def lidar_depth_target_reference(points, batch, cam2img, cam2lidar, feat_hw, image_hw, bins):
    """Loop over samples, cameras and points with the numpy projection of tacocc_core.geometry."""
    (h, w), (ih, iw) = feat_hw, image_hw
    lo, _, step = bins
    n_bins = len(depth_bin_centers(bins))
    b, v = cam2img.shape[:2]
    nearest = np.full((b, v, h, w), np.inf)
    for s in range(b):
        pts = points[batch == s, :3].double().numpy()
        for c in range(v):
            lidar2cam = invert_transform(cam2lidar[s, c].double().numpy())
            uv, depth = project_points(pts, lidar2cam, cam2img[s, c].double().numpy())
            for (u, vv), d in zip(uv, depth, strict=True):
                if not d > 1e-3:
                    continue
                col, row = int(np.floor((u + 0.5) * w / iw)), int(np.floor((vv + 0.5) * h / ih))
                if 0 <= col < w and 0 <= row < h:
                    nearest[s, c, row, col] = min(nearest[s, c, row, col], d)
    out = np.full((b, v, h, w), -1)
    ok = np.isfinite(nearest)
    binned = np.floor((nearest[ok] - lo) / step)
    out[ok] = np.where((binned >= 0) & (binned < n_bins), binned, -1)
    return out


@pytest.mark.parametrize(("seed", "n", "b"), [(0, 300, 1), (1, 500, 2)])
def test_lidar_depth_target_matches_reference(seed, n, b):
    gen = torch.Generator().manual_seed(seed)
    cam2img, cam2lidar = camera_rig(TINY)
    v = len(TINY.cameras.names)
    cam2img, cam2lidar = cam2img.expand(b, v, 3, 3), cam2lidar.expand(b, v, 4, 4)
    points = torch.zeros(n, 5)
    points[:, :3] = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([60.0, 60.0, 4.0])
    batch = torch.randint(0, b, (n,), generator=gen)
    bins, hw = TINY.view_transform.depth_bins, TINY.cameras.image_size
    got = lidar_depth_target(points, batch, cam2img, cam2lidar, (8, 22), hw, bins)
    expected = lidar_depth_target_reference(points, batch, cam2img, cam2lidar, (8, 22), hw, bins)
    assert (expected >= 0).sum() > 20
    mismatch = got.numpy() != expected
    # float32 vs float64 projection: a point exactly on a cell or bin border may land on either side.
    assert mismatch.sum() <= 2, np.argwhere(mismatch)
