import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.batch import frames_to_batch
from tacocc_core.frame import Frame
from tacocc_core.geometry import GridSpec
from tacocc_core.render.targets import (
    frame_interval,
    frame_motion,
    frame_points,
    window_frames,
    window_targets,
)

GRID = GridSpec(lower=(-16.0, -16.0, -4.0), voxel_size=(2.0, 2.0, 2.0), shape=(16, 16, 4))
H, W = 16, 24


def camera(yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # x right, y down, z forward
    c2l = np.eye(4)
    c2l[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix() @ base
    c2l[:3, 3] = [0.5, 0.1, 1.5]
    k = np.array([[0.7 * W, 0.0, W / 2], [0.0, 0.7 * W, H / 2], [0.0, 0.0, 1.0]])
    return c2l, k


def pose(s: int) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("z", 5.0 * s, degrees=True).as_matrix()
    out[:3, 3] = [100.0 + 2.0 * s, 50.0 + 0.3 * s, 1.0]
    return out


def make_batch(steps: int = 3, stamps_s=(0.0, 0.5, 1.0)) -> dict[str, torch.Tensor]:
    """One sequence: ego drives 2 m per frame; a static wall; a box moving 0.6 m per frame; one old sweep."""
    rng = np.random.default_rng(0)
    wall = np.stack([np.full(300, 110.7), 40.0 + rng.random(300) * 20.0, rng.random(300) * 2.0], 1)
    box_shape = rng.random((40, 3)) * 0.2
    frames = []
    for s in range(steps):
        box = np.array([105.3, 45.3, 1.4]) + box_shape + [0.6 * s, 0.0, 0.0]
        world = np.concatenate([wall, box])
        lidar = (np.linalg.inv(pose(s)) @ np.c_[world, np.ones(len(world))].T).T[:, :3]
        old = lidar[:20] + 5.0  # a merged older sweep (time lag 0.05 s): not the keyframe's geometry
        pts = np.concatenate(
            [np.c_[lidar, np.ones(len(lidar)), np.zeros(len(lidar))], np.c_[old, np.ones(20), np.full(20, 0.05)]]
        )
        c2l = np.stack([camera(0.0)[0], camera(180.0)[0]])
        k = np.stack([camera(0.0)[1], camera(180.0)[1]])
        images = np.full((2, H, W, 3), 40 * s, dtype=np.uint8)
        frames.append(
            Frame(
                images=images,
                cam2img=k,
                cam2lidar=c2l,
                points=pts.astype(np.float32),
                lidar2global=pose(s),
                stamp_ns=int(round(stamps_s[s] * 1e9)),
                camera_valid=np.array([True, s != 2]),
            )
        )
    return frames_to_batch([frames], GRID.shape)


def test_window_frames():
    assert window_frames(0, 5, 1) == [0, 1]
    assert window_frames(2, 5, 1) == [2, 1, 3]
    assert window_frames(4, 5, 2) == [4, 2, 3]
    assert window_frames(1, 3, 0) == [1]
    # None: the whole temporal window (the paper's T = 5), the frame itself first.
    assert window_frames(0, 5, None) == [0, 1, 2, 3, 4]
    assert window_frames(2, 5, None) == [2, 0, 1, 3, 4]
    with pytest.raises(ValueError, match="neighbours must be >= 0 or None"):
        window_frames(2, 5, -1)


def test_targets_span_the_whole_window_by_default():
    from tacocc_core.config import RendererConfig

    assert RendererConfig().neighbour_frames is None
    batch = make_batch()
    targets = window_targets(batch, 0, 0, neighbours=RendererConfig().neighbour_frames, render_scale=0.5)
    assert targets.images.shape[0] == 3 and targets.times.tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_neighbour_cameras_are_moved_into_the_frame_of_the_gaussians():
    batch = make_batch()
    targets = window_targets(batch, 0, 1, neighbours=1, render_scale=0.5)
    assert targets.images.shape == (3, 2, H // 2, W // 2, 3) and targets.size == (H // 2, W // 2)
    assert targets.times.tolist() == pytest.approx([0.0, -0.5, 0.5])
    # A world point seen by frame 2's front camera lands on the same (scaled) pixel when projected with the
    # moved camera from frame 1's LiDAR frame.
    world = np.array([112.0, 51.5, 1.2, 1.0])
    c2l, k = camera(0.0)
    in_own = np.linalg.inv(c2l) @ np.linalg.inv(pose(2)) @ world
    pixel = (k @ in_own[:3])[:2] / in_own[2]
    moved = targets.cam2lidar[2, 0].double().numpy()
    in_moved = np.linalg.inv(moved) @ np.linalg.inv(pose(1)) @ world
    pixel_moved = (targets.cam2img[2, 0].double().numpy() @ in_moved[:3])[:2] / in_moved[2]
    np.testing.assert_allclose(pixel_moved, pixel * 0.5, atol=1e-4)
    assert torch.allclose(targets.cam2lidar[0], batch["cam2lidar"][0, 1])  # the frame itself: unchanged


def test_images_and_masks():
    batch = make_batch()
    sky = torch.zeros(1, 3, 2, H, W, dtype=torch.bool)
    sky[0, 1, 0, : H // 2] = True  # top half of frame 1's front camera is sky
    targets = window_targets(batch, 0, 1, neighbours=1, render_scale=1.0, sky=sky)
    assert torch.allclose(targets.images[0], torch.full_like(targets.images[0], 40 / 255))
    assert targets.valid[0, 0].float().mean().item() == 0.5 and targets.valid[0, 1].all()
    assert not targets.valid[2, 1].any()  # frame 2's back camera is missing
    assert targets.valid[1].all()
    with pytest.raises(ValueError, match=r"sky masks must be \(1, 3, 2, 16, 24\)"):
        window_targets(batch, 0, 1, 1, 1.0, sky=sky[:, :2])
    with pytest.raises(ValueError, match=r"frame \(b=0, t=3\) outside a batch of 1 x 3"):
        window_targets(batch, 0, 3, 1, 1.0)


def test_keyframe_points_interval_and_motion():
    batch = make_batch()
    assert frame_points(batch, 0, 1).shape == (340, 5)
    assert frame_points(batch, 0, 1, keyframe_only=False).shape == (360, 5)
    assert frame_interval(batch, 0) == pytest.approx(0.5)
    for t in (0, 2):
        motion = frame_motion(batch, 0, t, GRID)
        assert motion is not None and motion.dt == pytest.approx(0.5)
        norms = motion.displacement.norm(dim=1)
        # The box moves 0.6 m per frame (a few of its points cross into the next voxel), the wall stands still once the
        # ego motion is compensated.
        box_voxels = {tuple(i) for i in GRID.point_to_index(frame_points(batch, 0, t)[300:, :3].numpy())[0]}
        on_box = torch.tensor([tuple(i) in box_voxels for i in motion.index.tolist()])
        assert on_box.sum() == 1 and norms[on_box].item() == pytest.approx(0.6, abs=0.1)
        assert norms[~on_box].max() < 1e-4 and (~on_box).sum() >= 10
    single = make_batch(steps=1)
    assert frame_motion(single, 0, 0, GRID) is None and frame_interval(single, 0) == 0.5
