import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tacocc_core.geometry import GridSpec, make_transform
from tacocc_core.train.pseudo_labels import (
    FREE,
    OCCUPIED,
    UNKNOWN,
    fill_unlabelled,
    geometry_loss,
    geometry_to_semantic,
    lidar_geometry_target,
    sweep_origins,
    teacher_pseudo_labels,
    traversed_voxels,
)

GRID = GridSpec.from_ranges((-4.0, 4.0), (-4.0, 4.0), (-2.0, 2.0), 1.0)  # 8 x 8 x 4


def _reference_crossed(origin, end, grid):
    """Slow and exact: a voxel is crossed when the segment overlaps its box for a positive length (slab test).

    Tests every voxel of the grid inside the segment's bounding box, one slab test per voxel (vectorised
    over voxels only).
    """
    o = np.asarray(origin, dtype=np.float64)
    e = np.asarray(end, dtype=np.float64)
    d = e - o
    size, lower = np.asarray(grid.voxel_size), np.asarray(grid.lower)
    first = np.clip(np.floor((np.minimum(o, e) - lower) / size).astype(int) - 1, 0, np.asarray(grid.shape))
    last = np.clip(np.floor((np.maximum(o, e) - lower) / size).astype(int) + 2, 0, np.asarray(grid.shape))
    idx = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(first, last, strict=True)), indexing="ij"), -1)
    idx = idx.reshape(-1, 3)
    lo = lower + idx * size
    hi = lo + size
    t0, t1 = np.zeros(len(idx)), np.ones(len(idx))
    for a in range(3):
        if d[a] == 0:
            outside = ~((lo[:, a] < o[a]) & (o[a] < hi[:, a]))
            t0[outside], t1[outside] = 1.0, 0.0
            continue
        ta, tb = (lo[:, a] - o[a]) / d[a], (hi[:, a] - o[a]) / d[a]
        t0, t1 = np.maximum(t0, np.minimum(ta, tb)), np.minimum(t1, np.maximum(ta, tb))
    return {tuple(i) for i in idx[t1 - t0 > 1e-9].tolist()}


def _reference_target(points, origins, grid):
    target = np.full(grid.shape, UNKNOWN, np.uint8)
    for o, p in zip(origins, points, strict=True):
        for idx in _reference_crossed(o, p[:3], grid):
            target[idx] = FREE
    idx, inside = grid.point_to_index(points[:, :3])
    for i in idx[inside]:
        target[tuple(i)] = OCCUPIED
    return target


def _rays(seed, case):
    rng = np.random.default_rng(seed)
    n = 25
    points = rng.uniform(-6, 6, (n, 3))  # some inside the grid, some beyond it
    points[:, 2] = rng.uniform(-3, 3, n)
    if case == "origin":
        origins = np.zeros((n, 3))
    elif case == "outside":
        origins = np.tile([-7.3, 0.35, 0.6], (n, 1))  # sensor outside the grid
    else:  # per-ray origins (multi-sweep), some rays parallel to an axis
        origins = rng.uniform(-1.5, 1.5, (n, 3))
        points[:5, 1:] = origins[:5, 1:]  # along x only
        points[5:8, 2] = origins[5:8, 2]  # horizontal rays
    return points.astype(np.float32), origins


@pytest.mark.parametrize("case", ["origin", "outside", "multi"])
@pytest.mark.parametrize("seed", [0, 1])
def test_geometry_target_matches_the_slab_reference(seed, case):
    points, origins = _rays(seed, case)
    points64 = points.astype(np.float64)
    fast = lidar_geometry_target(points, GRID, origins=origins).numpy()
    expected = _reference_target(points64, origins, GRID)
    np.testing.assert_array_equal(fast, expected)
    assert (fast == FREE).any() and (fast == OCCUPIED).any() and (fast == UNKNOWN).any()


def test_traversal_pairs_match_the_reference_per_ray():
    points, origins = _rays(3, "multi")
    ray, voxel = traversed_voxels(torch.from_numpy(origins), torch.from_numpy(points.astype(np.float64)), GRID)
    for r in range(len(points)):
        got = {tuple(v) for v in voxel[ray == r].tolist()}
        assert got == _reference_crossed(origins[r], points[r].astype(np.float64), GRID), f"ray {r}"


def test_real_sweep_rays_match_the_reference(nuscenes_frame_dir):
    from tacocc_core.config import load_preset

    grid = load_preset("nuscenes_r50_256x704").grid.spec()  # 200 x 200 x 16, 0.5 m
    points = np.fromfile(next(nuscenes_frame_dir.glob("*LIDAR_TOP*.pcd.bin")), np.float32).reshape(-1, 5)
    rng = np.random.default_rng(0)
    pick = points[rng.choice(len(points), 40, replace=False), :3].astype(np.float64)
    origins = np.zeros_like(pick)
    ray, voxel = traversed_voxels(torch.from_numpy(origins), torch.from_numpy(pick), grid)
    for r in range(len(pick)):
        got = {tuple(v) for v in voxel[ray == r].tolist()}
        assert got == _reference_crossed(origins[r], pick[r], grid), f"ray {r} to {pick[r]}"
    # The whole sweep: returns make occupied voxels, the space in between is mostly free.
    target = lidar_geometry_target(points, grid)
    assert (target == OCCUPIED).sum() > 1000 and (target == FREE).sum() > 10 * (target == OCCUPIED).sum()


def test_chunking_does_not_change_the_result():
    points, origins = _rays(4, "multi")
    whole = lidar_geometry_target(points, GRID, origins=origins)
    torch.testing.assert_close(whole, lidar_geometry_target(points, GRID, origins=origins, chunk=3))


def test_simple_ray_by_hand():
    # One ray along +x at y = 0.5, z = 0.5 from the origin to x = 2.5: voxels x = 4, 5 free, x = 6 hit.
    target = lidar_geometry_target(np.array([[2.5, 0.5, 0.5, 0.0, 0.0]], np.float32), GRID, origins=(0.0, 0.5, 0.5))
    assert target[4, 4, 2] == FREE and target[5, 4, 2] == FREE and target[6, 4, 2] == OCCUPIED
    assert (target != UNKNOWN).sum() == 3


def test_occupied_wins_and_old_returns_can_be_left_out():
    points = np.array(
        [[3.5, 0.5, 0.5, 0.0, 0.0], [1.5, 0.5, 0.5, 0.0, 0.4]], np.float32
    )  # the second return lies on the first ray
    origin = (0.0, 0.5, 0.5)
    both = lidar_geometry_target(points, GRID, origins=origin)
    assert both[5, 4, 2] == OCCUPIED and both[7, 4, 2] == OCCUPIED and both[6, 4, 2] == FREE
    recent = lidar_geometry_target(points, GRID, origins=origin, max_lag_s=0.2)
    assert recent[5, 4, 2] == FREE


def test_a_ray_grazing_the_ground_frees_nothing_in_the_ground_level_with_skip_hit_level():
    # A sensor 1.5 m above a flat ground at z = -1.8 (inside level z in [-2, -1)), a return 7.8 m away: the
    # ray enters the ground level at x = -0.26 and passes four voxels there (x in [-1, 3)) above the surface.
    ray = np.array([[3.9, 0.5, -1.8, 0.0, 0.0]], np.float32)
    origin = (-3.9, 0.5, -0.3)
    plain = lidar_geometry_target(ray, GRID, origins=origin)
    conservative = lidar_geometry_target(ray, GRID, origins=origin, skip_hit_level=True)
    ground = 0  # level index of z in [-2, -1)
    assert (plain[:, :, ground] == FREE).nonzero()[:, 0].tolist() == [3, 4, 5, 6]
    assert (conservative[:, :, ground] == FREE).sum() == 0 and conservative[7, 4, ground] == OCCUPIED
    above = plain[:, :, 1:] == FREE
    assert above.sum() > 0 and torch.equal(conservative[:, :, 1:] == FREE, above)


def test_clearance_keeps_the_neighbours_of_returns_unknown():
    # Two rays along +x in neighbouring voxel rows (y index 4 and 5, level 2): A ends in voxel x = 7, B in x = 4.
    rays = np.array([[3.5, 0.5, 0.5, 0.0, 0.0], [0.5, 1.5, 0.5, 0.0, 0.0]], np.float32)
    origins = np.array([[-3.5, 0.5, 0.5], [-3.5, 1.5, 0.5]])
    plain = lidar_geometry_target(rays, GRID, origins=origins)
    near = lidar_geometry_target(rays, GRID, origins=origins, clearance=1)
    assert plain[7, 4, 2] == OCCUPIED and plain[4, 5, 2] == OCCUPIED
    assert (plain[:7, 4, 2] == FREE).all() and (plain[:4, 5, 2] == FREE).all()
    # Free voxels beside either return (x +- 1, y +- 1, same level) become unknown; the others stay free.
    assert near[6, 4, 2] == UNKNOWN and near[3, 4, 2] == UNKNOWN and near[5, 4, 2] == UNKNOWN
    assert near[3, 5, 2] == UNKNOWN
    assert (near[:3, 4, 2] == FREE).all() and (near[:3, 5, 2] == FREE).all()
    assert near[7, 4, 2] == OCCUPIED and near[4, 5, 2] == OCCUPIED
    with pytest.raises(ValueError, match="clearance"):
        lidar_geometry_target(rays, GRID, origins=origins, clearance=-1)


def test_bad_points_and_origins_are_named():
    with pytest.raises(ValueError, match=r"expected \(N, 3\+\) points"):
        lidar_geometry_target(np.zeros((4, 2), np.float32), GRID)
    with pytest.raises(ValueError, match=r"origins must be \(3,\) or \(4, 3\)"):
        lidar_geometry_target(np.zeros((4, 5), np.float32), GRID, origins=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="chunk must be in"):
        lidar_geometry_target(np.zeros((4, 3), np.float32), GRID, chunk=0)
    with pytest.raises(ValueError, match="time-lag column"):
        lidar_geometry_target(np.zeros((4, 3), np.float32), GRID, max_lag_s=0.1)
    nan = np.full((1, 5), np.nan, np.float32)
    assert (lidar_geometry_target(nan, GRID) == UNKNOWN).all()


def test_sweep_origins_interpolate_the_track():
    track = np.stack([make_transform(np.eye(3), [x, 0.0, 0.0]) for x in (0.0, 5.0, 10.0)])
    stamps = np.array([0.0, 0.5, 1.0])
    key = track[2]
    origins = sweep_origins(np.array([0.0, 0.25, 0.75, 5.0]), 1.0, key, stamps, track)
    np.testing.assert_allclose(origins[:, 0], [0.0, -2.5, -7.5, -10.0])  # clamped to the first pose
    np.testing.assert_allclose(origins[:, 1:], 0.0)
    with pytest.raises(ValueError, match="stamps must increase"):
        sweep_origins(np.zeros(1), 1.0, key, stamps[::-1], track)


def test_geometry_loss_matches_plain_bce():
    torch.manual_seed(0)
    logits = torch.randn(2, 17, 4, 4, 2, requires_grad=True)
    target = torch.randint(0, 2, (2, 4, 4, 2), dtype=torch.uint8)
    target[0, 0] = UNKNOWN
    loss = geometry_loss(logits, target, occupied_weight=2.0)
    p_occ = 1 - F.softmax(logits, dim=1)[:, 0]
    known = target != UNKNOWN
    y = (target == OCCUPIED).float()
    w = torch.where(target == OCCUPIED, 2.0, 1.0)
    expected = F.binary_cross_entropy(p_occ[known], y[known], weight=w[known], reduction="sum") / w[known].sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad[0, :, 0].abs().sum() == 0  # unknown voxels give no gradient


def test_geometry_loss_is_finite_for_extreme_logits_and_empty_targets():
    logits = torch.zeros(1, 17, 2, 2, 1)
    logits[:, 0] = 200.0  # p(empty) rounds to 1 in float32
    target = torch.full((1, 2, 2, 1), OCCUPIED, dtype=torch.uint8)
    assert torch.isfinite(geometry_loss(logits, target)) and geometry_loss(logits, target) > 100
    unknown = torch.full_like(target, UNKNOWN)
    assert geometry_loss(logits.requires_grad_(), unknown).item() == 0.0
    with pytest.raises(ValueError, match="must be 0, 1 or 255"):
        geometry_loss(logits, torch.full_like(target, 7))
    with pytest.raises(ValueError, match="expected logits"):
        geometry_loss(logits[0], target)


def test_teacher_labels_and_fill():
    logits = torch.full((1, 17, 3, 1, 1), -10.0)
    logits[0, 4, 0] = 10.0  # confident car
    logits[0, 4, 1] = 0.0
    logits[0, 9, 1] = 0.0  # two equal classes: p = ~0.5
    logits[0, 0, 2] = 3.0  # empty, p = 1 / (1 + 16 exp(-13)) ~ 1
    labels = teacher_pseudo_labels(logits, threshold=0.7)
    assert labels.dtype == torch.uint8 and labels.flatten().tolist() == [4, 255, 0]
    gt = torch.tensor([[[[255]], [[255]], [[7]]]], dtype=torch.uint8)
    assert fill_unlabelled(gt, labels).flatten().tolist() == [4, 255, 7]
    with pytest.raises(ValueError, match="threshold"):
        teacher_pseudo_labels(logits, 0.0)


def test_geometry_to_semantic():
    target = torch.tensor([FREE, OCCUPIED, UNKNOWN], dtype=torch.uint8)
    assert geometry_to_semantic(target).tolist() == [0, 255, 255]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: compares the CUDA traversal with the CPU one")
def test_cuda_traversal_equals_cpu():
    points, origins = _rays(5, "multi")
    cpu = lidar_geometry_target(points, GRID, origins=origins)
    cuda = lidar_geometry_target(torch.from_numpy(points).cuda(), GRID, origins=torch.from_numpy(origins).cuda())
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu)
