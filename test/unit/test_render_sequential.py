import dataclasses
import logging
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.batch import frames_to_batch
from tacocc_core.config import config_from_dict, config_to_dict, load_preset
from tacocc_core.frame import Frame
from tacocc_core.geometry import GridSpec
from tacocc_core.model.temporal import TemporalAggregator
from tacocc_core.render.gaussians import Gaussians
from tacocc_core.render.rasterize import render_views
from tacocc_core.render.sequential_renderer import SequentialRenderer, render_window
from tacocc_core.render.targets import Motion, RenderTargets

H, W = 16, 24


def small_config(**renderer):
    """The tiny preset (coarse grid 24 x 24 x 4 of 2 m voxels) with a small renderer."""
    data = config_to_dict(load_preset("tiny"))
    data["renderer"].update(
        dict(
            max_gaussians=160,
            lidar_anchors=60,
            inner_steps=2,
            inner_lr=0.05,
            inner_lr_schedule="uniform",  # a fixed number of steps at one rate: tests of the plumbing
            inner_tolerance=0.0,
            pc_reduction="mean",
            head_channels=8,
            neighbour_frames=0,
            render_scale=1.0,
            voxel_anchor_source="feature_norm",  # the sparse test volumes are their own evidence
        )
    )
    data["renderer"].update(renderer)
    return config_from_dict(data)


def rig(yaws=(0.0, 180.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """cam2lidar (V, 4, 4) 1.5 m up looking out at the yaws, cam2img (V, 3, 3)."""
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    c2l = np.tile(np.eye(4), (len(yaws), 1, 1))
    for v, yaw in enumerate(yaws):
        c2l[v, :3, :3] = Rotation.from_euler("z", yaw, degrees=True).as_matrix() @ base
        c2l[v, :3, 3] = [0.5, 0.0, 1.5]
    k = np.array([[0.7 * W, 0.0, W / 2], [0.0, 0.7 * W, H / 2], [0.0, 0.0, 1.0]])
    return torch.tensor(c2l, dtype=torch.float32), torch.tensor(np.tile(k, (len(yaws), 1, 1)), dtype=torch.float32)


def wall_points(seed: int = 0) -> torch.Tensor:
    """(P, 5) LiDAR points on two walls: 8 m ahead and 8 m behind the vehicle."""
    g = torch.Generator().manual_seed(seed)
    n = 200
    y = torch.rand(n, generator=g) * 12 - 6
    z = torch.rand(n, generator=g) * 4 - 1
    x = torch.where(torch.arange(n) % 2 == 0, 8.3, -8.3)
    return torch.stack([x, y, z, torch.ones(n), torch.zeros(n)], dim=1)


def sparse_features(renderer: SequentialRenderer, points: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(C, X, Y, Z) random features in the voxels holding points, zeros elsewhere (a sparse F_IL)."""
    grid = renderer.grid
    g = torch.Generator().manual_seed(seed)
    feats = torch.zeros(renderer.head.in_channels, *grid.shape)
    idx, inside = grid.point_to_index(points[:, :3].numpy())
    idx = torch.from_numpy(idx[inside])
    feats[:, idx[:, 0], idx[:, 1], idx[:, 2]] = torch.randn(feats.shape[0], len(idx), generator=g)
    return feats.requires_grad_(True)


def scene_targets(points: torch.Tensor, times=(0.0,)) -> RenderTargets:
    """Images of a red front wall and a blue back wall, rendered from Gaussians on the points."""
    c2l, k = rig()
    n = points.shape[0]
    colour = torch.where(
        (points[:, 0] > 0)[:, None], torch.tensor([0.45, -0.3, -0.3]), torch.tensor([-0.3, -0.2, 0.45])
    )
    truth = Gaussians(
        means=points[:, :3].clone(),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.6),
        opacities=torch.full((n,), 0.9),
        sh=(colour / 0.28209479177387814)[:, None, :],
        mu_t=torch.zeros(n),
        sigma_t=torch.ones(n),
    )
    with torch.no_grad():
        rgb, _, _ = render_views(truth, c2l, k, W, H)
    s = len(times)
    return RenderTargets(
        images=rgb.clamp(0, 1)[None].repeat(s, 1, 1, 1, 1),
        valid=torch.ones(s, 2, H, W, dtype=torch.bool),
        cam2lidar=c2l[None].repeat(s, 1, 1, 1),
        cam2img=k[None].repeat(s, 1, 1, 1),
        times=torch.tensor(times, dtype=torch.float32),
    )


def make_renderer(**renderer) -> SequentialRenderer:
    torch.manual_seed(0)
    return SequentialRenderer.from_config(small_config(**renderer), backend="torch")


def test_lpc_reaches_features_and_head_lrgb_reaches_only_beta():
    renderer = make_renderer()
    pts = wall_points()
    feats = sparse_features(renderer, pts)
    res = renderer(feats, pts, scene_targets(pts), generator=torch.Generator().manual_seed(0))
    assert res.skipped is None and res.stopped is None
    assert res.num_lidar == 60 and 0 < res.num_voxel <= 100 and res.num_gaussians <= 160
    assert len(res.rgb_steps) == 3 and res.l_pc.item() > 0
    grads = torch.autograd.grad(res.l_pc, [feats, *renderer.head.parameters()], retain_graph=True)
    assert all(torch.isfinite(g).all() for g in grads)
    assert grads[0].abs().sum() > 0 and all(g.abs().sum() > 0 for g in grads[1:])
    beta = renderer.gate.log_beta
    assert torch.autograd.grad(res.l_pc, beta, allow_unused=True)[0] is None
    from_rgb = torch.autograd.grad(res.l_rgb, [feats, beta, *renderer.head.parameters()], allow_unused=True)
    assert all(g is None for g in from_rgb[:1] + from_rgb[2:])  # L_rgb never reaches the network
    assert from_rgb[1] is not None


def test_inner_loop_reduces_lrgb_on_a_synthetic_scene():
    renderer = make_renderer(inner_steps=8, inner_lr=0.1)
    pts = wall_points()
    res = renderer(sparse_features(renderer, pts), pts, scene_targets(pts), generator=torch.Generator().manual_seed(0))
    steps = res.rgb_steps
    assert len(steps) == 9 and all(math.isfinite(v) for v in steps)
    assert steps[-1] < 0.8 * steps[0], steps
    assert res.l_rgb.item() == pytest.approx(steps[-1])
    # More inner steps move Theta further from Theta^0.
    short = make_renderer(inner_steps=1, inner_lr=0.1)
    res_short = short(sparse_features(short, pts), pts, scene_targets(pts), generator=torch.Generator().manual_seed(0))
    assert res.l_pc.item() > res_short.l_pc.item() > 0


def test_the_converged_fit_lowers_lrgb_stops_by_its_rule_and_sums_lpc_over_gaussians():
    """The paper's inner fit: 3DGS per-group rates, run until L_rgb stops falling; L_pc the sum over Gaussians."""
    fit = dict(inner_lr_schedule="3dgs", inner_steps=400, inner_tolerance=0.05, inner_window=10, pc_reduction="sum")
    renderer = make_renderer(**fit)
    pts = wall_points()
    res = renderer(sparse_features(renderer, pts), pts, scene_targets(pts), generator=torch.Generator().manual_seed(0))
    assert res.skipped is None and res.stopped is None
    assert res.converged and 10 < res.inner_steps < 400, res.inner_steps
    assert res.rgb_steps[-1] < 0.9 * res.rgb_steps[0], res.rgb_steps[::20]
    # The same (one-step) fit with L_pc as the sum and as the mean: the sum is N times the mean.
    one = {**fit, "inner_steps": 1}
    pcs = []
    for reduction in ("sum", "mean"):
        r = make_renderer(**{**one, "pc_reduction": reduction})
        out = r(sparse_features(r, pts), pts, scene_targets(pts), generator=torch.Generator().manual_seed(0))
        pcs.append(out.l_pc.item())
    assert pcs[0] == pytest.approx(out.num_gaussians * pcs[1], rel=1e-4)
    # The means move at 1.6e-4 per metre of scene extent (the grid's half diagonal).
    size = [n * v for n, v in zip(renderer.grid.shape, renderer.grid.voxel_size, strict=True)]
    assert renderer.extent_m == pytest.approx(0.5 * math.sqrt(sum(x * x for x in size)))
    assert renderer.schedule(scene_targets(pts)).lrs["means"] == pytest.approx(1.6e-4 * renderer.extent_m)


def test_no_lidar_points_gives_voxel_anchors_only():
    renderer = make_renderer()
    pts = wall_points()
    res = renderer(sparse_features(renderer, pts), torch.zeros(0, 5), scene_targets(pts))
    assert res.skipped is None and res.num_lidar == 0 and res.num_voxel > 0
    assert torch.isfinite(res.l_pc) and torch.isfinite(res.l_rgb)
    res.l_pc.backward()


def test_lidar_anchors_filling_the_budget_leave_no_voxel_anchors():
    renderer = make_renderer(max_gaussians=40, lidar_anchors=100)
    pts = wall_points()
    res = renderer(sparse_features(renderer, pts), pts, scene_targets(pts))
    assert res.skipped is None and (res.num_lidar, res.num_voxel) == (40, 0)
    assert torch.isfinite(res.l_pc)


def test_an_empty_volume_is_skipped_with_a_zero_loss_that_still_backpropagates(caplog):
    renderer = make_renderer()
    pts = wall_points()
    feats = torch.zeros(renderer.head.in_channels, *renderer.grid.shape, requires_grad=True)
    with caplog.at_level(logging.WARNING):
        res = renderer(feats, pts, scene_targets(pts))
    assert "no non-zero voxels" in res.skipped and "no non-zero voxels" in caplog.text
    assert res.l_pc.item() == 0.0 and res.l_rgb.item() == 0.0 and res.rgb_steps == []
    (res.l_pc + res.l_rgb).backward()
    assert feats.grad is not None and feats.grad.abs().sum() == 0
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in renderer.parameters())


def test_non_finite_features_are_skipped_and_never_reach_the_weights():
    renderer = make_renderer()
    pts = wall_points()
    feats = sparse_features(renderer, pts).detach()
    feats[0, 0, 0, 0] = float("nan")
    feats.requires_grad_(True)
    res = renderer(feats, pts, scene_targets(pts))
    assert "non-finite" in res.skipped and res.l_pc.item() == 0.0
    res.l_pc.backward()
    assert torch.isfinite(feats.grad).all()


def test_cameras_behind_every_gaussian_give_an_empty_render_finite_losses_and_finite_weights():
    renderer = make_renderer()
    pts = wall_points()
    targets = scene_targets(pts)
    away = targets.cam2lidar.clone()
    away[..., :3, 3] = torch.tensor([60.0, 0.0, 1.5])  # 60 m out, both cameras facing away from the scene
    away[:, 1, :3, :3] = away[:, 0, :3, :3]
    targets = dataclasses.replace(targets, cam2lidar=away)
    feats = sparse_features(renderer, pts)
    optimiser = torch.optim.SGD(renderer.parameters(), lr=0.1)
    res = renderer(feats, pts, targets, return_images=True)
    rgb, depth = res.images
    assert rgb.abs().sum() == 0 and depth.abs().sum() == 0
    assert all(math.isfinite(v) for v in res.rgb_steps) and torch.isfinite(res.l_pc)
    assert res.l_pc.item() == 0.0  # nothing seen, nothing to learn: Theta^final = Theta^0
    (res.l_pc + res.l_rgb).backward()
    optimiser.step()
    assert all(torch.isfinite(p).all() for p in renderer.parameters())
    assert torch.isfinite(feats.grad).all()


def test_neighbour_frames_see_the_gaussians_through_their_temporal_weights():
    renderer = make_renderer()
    pts = wall_points()
    # Frame t and a "neighbour" 20 frame intervals later: sigma_t is about one interval, the weight ~ 0.
    targets = scene_targets(pts, times=(0.0, 10.0))
    res = renderer(sparse_features(renderer, pts), pts, targets, time_scale=0.5, return_images=True)
    rgb, _ = res.images
    assert rgb.shape == (4, H, W, 3)
    assert rgb[:2].abs().sum() > 0 and rgb[2:].abs().max() == 0


def test_velocity_gate_marks_the_gaussians_of_moving_voxels():
    renderer = make_renderer(lidar_anchors=0, max_gaussians=400)
    pts = wall_points()
    feats = sparse_features(renderer, pts)
    grid: GridSpec = renderer.grid
    occupied = (feats.detach().abs().amax(0) > 0).nonzero()
    moving = occupied[:2]
    disp = torch.zeros(len(occupied), 3)
    disp[:2, 0] = 1.5  # two voxels moved 1.5 m in 0.5 s, the rest stood still
    motion = Motion(index=occupied, displacement=disp, dt=0.5, grid=grid)
    res = renderer(feats, pts, scene_targets(pts), motion=motion)
    assert res.num_voxel == len(occupied) and res.num_moving == len(moving)
    res.l_rgb.backward()
    assert torch.isfinite(renderer.gate.log_beta.grad)
    still = Motion(index=occupied, displacement=torch.zeros(len(occupied), 3), dt=0.5, grid=grid)
    assert renderer(feats, pts, scene_targets(pts), motion=still).num_moving == 0


def window_batch(steps: int = 2):
    """One sequence of `steps` frames: the two walls, the ego moving 1 m per 0.5 s frame."""
    c2l, k = rig()
    pts = wall_points()
    targets = scene_targets(pts)
    frames = []
    for s in range(steps):
        pose = np.eye(4)
        pose[0, 3] = float(s)
        moved = pts.clone()
        moved[:, 0] -= float(s)
        frames.append(
            Frame(
                images=(targets.images[0].numpy() * 255).astype(np.uint8),
                cam2img=k.double().numpy(),
                cam2lidar=c2l.double().numpy(),
                points=moved.numpy(),
                lidar2global=pose,
                stamp_ns=s * 500_000_000,
            )
        )
    return frames


def test_render_window_back_propagates_through_the_temporal_aggregator():
    cfg = small_config(neighbour_frames=1, inner_steps=1)
    torch.manual_seed(0)
    renderer = SequentialRenderer.from_config(cfg, backend="torch")
    aggregator = TemporalAggregator.from_config(cfg)
    batch = frames_to_batch([window_batch()], cfg.grid.spec().shape)
    fused = torch.zeros(1, 2, cfg.fuser.channels, *renderer.grid.shape)
    fused[..., 14:18, 8:16, 1:3] = torch.randn(1, 2, cfg.fuser.channels, 4, 8, 2)  # around the front wall
    fused.requires_grad_(True)
    smoothed = aggregator(fused, batch["lidar2global"], batch["stamps_ns"])
    out = render_window(renderer, smoothed, batch, generator=torch.Generator().manual_seed(0))
    assert [bt for bt, _ in out.frames] == [(0, 0), (0, 1)]
    assert all(res.skipped is None for _, res in out.frames)
    assert out.l_pc.item() == pytest.approx(np.mean([res.l_pc.item() for _, res in out.frames]))
    out.l_pc.backward()
    assert fused.grad.abs().sum() > 0 and torch.isfinite(fused.grad).all()
    assert all(p.grad is not None for p in aggregator.parameters())
    with pytest.raises(ValueError, match=r"features must be \(B, T, C, X, Y, Z\)"):
        render_window(renderer, smoothed[:, :1], batch)


def test_by_default_each_frame_is_rendered_into_every_frame_of_the_window():
    """neighbour_frames None (the default, the paper's T-frame window): frame 0 of 3 sees frames 0, 1 and 2."""
    cfg = small_config(neighbour_frames=None, inner_steps=1)
    torch.manual_seed(0)
    renderer = SequentialRenderer.from_config(cfg, backend="torch")
    batch = frames_to_batch([window_batch(3)], cfg.grid.spec().shape)
    smoothed = torch.zeros(1, 3, renderer.head.in_channels, *renderer.grid.shape)
    smoothed[..., 14:18, 8:16, 1:3] = 1.0
    out = render_window(renderer, smoothed, batch, frames=[(0, 0)], return_images=True)
    ((_, res),) = out.frames
    assert res.skipped is None and res.images[0].shape[0] == 3 * 2  # 3 frames x 2 cameras
    near = small_config(neighbour_frames=1, inner_steps=1)
    renderer.settings = near.renderer
    ((_, res),) = render_window(renderer, smoothed, batch, frames=[(0, 0)], return_images=True).frames
    assert res.images[0].shape[0] == 2 * 2  # frames 0 and 1 only


def test_presets_build_and_bad_input_is_named():
    for name in ("tiny", "nuscenes_r50_256x704"):
        cfg = load_preset(name)
        renderer = SequentialRenderer.from_config(cfg)
        assert renderer.grid.shape == tuple(n // cfg.head.coarse_downsample for n in cfg.grid.spec().shape)
    renderer = make_renderer()
    pts = wall_points()
    with pytest.raises(ValueError, match=r"features must be \(C, 24, 24, 4\)"):
        renderer(torch.zeros(16, 24, 24, 3), pts, scene_targets(pts))
    with pytest.raises(ValueError, match=r"points must be \(P, 3\+\)"):
        renderer(torch.zeros(16, 24, 24, 4), pts[:, :2], scene_targets(pts))


def box_points(centre_x: float, centre_y: float, seed: int, n: int = 300) -> torch.Tensor:
    """(P, 5) LiDAR points in a 2 x 2 x 2 m box (a car) centred at (x, y, 0)."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * 2.0 - 1.0 + torch.tensor([centre_x, centre_y, 0.0])
    return torch.cat([xyz, torch.ones(n, 1), torch.zeros(n, 1)], dim=1)


def static_walls(seed: int) -> torch.Tensor:
    """(P, 5) returns of the two walls of `wall_points` seen from a standing LiDAR: the same beams every
    sweep, with 2 cm of range noise (along x, the walls face the LiDAR; `seed` draws the noise)."""
    pts = torch.cat([wall_points(seed=i) for i in range(3)])
    noise = 0.02 * torch.randn(pts.shape[0], generator=torch.Generator().manual_seed(seed))
    pts[:, 0] += noise
    return pts


def moving_object_window(steps: int = 3, speed: float = 2.0):
    """`steps` frames 0.5 s apart, ego standing still: two static walls (resampled every sweep) and a box
    driving along +y at `speed` m/s, 5 m ahead; the cameras see what Gaussians on those points show."""
    c2l, k = rig()
    frames, clouds = [], []
    for s in range(steps):
        walls = static_walls(seed=1 + s)
        box = box_points(5.0, -3.0 + speed * 0.5 * s, seed=20 + s)
        pts = torch.cat([walls, box])
        images = scene_targets(pts).images[0]
        frames.append(
            Frame(
                images=(images.numpy() * 255).astype(np.uint8),
                cam2img=k.double().numpy(),
                cam2lidar=c2l.double().numpy(),
                points=pts.numpy(),
                lidar2global=np.eye(4),
                stamp_ns=s * 500_000_000,
            )
        )
        clouds.append(pts)
    return frames, clouds


def window_features(renderer: SequentialRenderer, clouds: list[torch.Tensor]) -> torch.Tensor:
    """(1, T, C, X, Y, Z) sparse features: random values in the voxels holding each frame's points."""
    return torch.stack([sparse_features(renderer, pts, seed=s).detach() for s, pts in enumerate(clouds)])[None]


def beta_gradient(neighbour_frames: int) -> tuple[float, list]:
    cfg = small_config(neighbour_frames=neighbour_frames, max_gaussians=400, lidar_anchors=200)
    torch.manual_seed(0)
    renderer = SequentialRenderer.from_config(cfg, backend="torch")
    frames, clouds = moving_object_window()
    batch = frames_to_batch([frames], cfg.grid.spec().shape)
    out = render_window(renderer, window_features(renderer, clouds), batch, generator=torch.Generator().manual_seed(0))
    out.l_rgb.backward()
    return float(renderer.gate.log_beta.grad), out.frames


def test_a_moving_object_widens_its_gaussians_only_and_neighbour_frames_give_beta_its_gradient():
    grad_own, _ = beta_gradient(0)
    grad_neighbours, frames = beta_gradient(1)
    for (_, t), res in frames:
        assert res.skipped is None
        on_box = (res.anchors[:, 0] > 3.0) & (res.anchors[:, 0] < 7.5)  # the box's lane, 5 m ahead
        on_walls = res.anchors[:, 0].abs() > 7.5
        assert on_box.any() and on_walls.sum() > on_box.sum()
        widened = res.widening > 1.0
        # sigma_t of moving Gaussians is doubled (velocity_widen 2), of static ones untouched
        assert torch.all((res.widening == 1.0) | (res.widening == 2.0))
        assert widened[on_box].any(), f"frame {t}: no Gaussian of the moving box was widened"
        assert not widened[on_walls].any(), f"frame {t}: a Gaussian of a static wall was widened"
        assert res.num_moving == int(widened.sum())
    # Rendered only at its own time a Gaussian keeps w(t) ~ 1 whatever sigma_t is, so beta learns ~ nothing;
    # rendered into the neighbouring frames, sigma_t (and through the gate, beta) decides what they see.
    # (With a long inner loop at a high learning rate, mu_t itself drifts off the frame's time and beta gets
    # a gradient at neighbour_frames 0 too.)
    assert math.isfinite(grad_neighbours) and abs(grad_neighbours) > 1e-6
    assert abs(grad_neighbours) > 20 * abs(grad_own), (grad_own, grad_neighbours)


def test_occupied_voxel_candidates_choose_the_voxel_anchors_and_none_with_no_lidar_is_a_skip():
    renderer = make_renderer(voxel_anchor_source="predicted")
    pts = wall_points()
    feats = sparse_features(renderer, pts)
    mask = torch.zeros(renderer.grid.shape, dtype=torch.bool)
    mask[16, 10:14, 2] = True  # four voxels on the front wall
    res = renderer(feats, pts, scene_targets(pts), voxel_candidates=(mask, mask.float()))
    assert res.skipped is None and res.num_voxel == 4
    voxel_part = res.anchors[res.num_lidar :]
    assert torch.all((voxel_part[:, 0] > 8.0) & (voxel_part[:, 0] < 10.0))
    empty = torch.zeros_like(mask)
    res = renderer(feats, torch.zeros(0, 5), scene_targets(pts), voxel_candidates=(empty, empty.float()))
    assert res.skipped is not None and "no anchors" in res.skipped and res.l_pc.item() == 0.0
    cfg = small_config(voxel_anchor_source="predicted", neighbour_frames=1, inner_steps=1)
    batch = frames_to_batch([window_batch()], cfg.grid.spec().shape)
    smoothed = torch.zeros(1, 2, renderer.head.in_channels, *renderer.grid.shape)
    with pytest.raises(ValueError, match="needs \\(K, X, Y, Z\\) coarse logits"):
        render_window(renderer, smoothed, batch)
