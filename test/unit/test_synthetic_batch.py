import numpy as np
import torch

from tacocc_core.batch import batch_at, frames_to_batch
from tacocc_core.config import load_preset
from tacocc_core.frame import Frame
from tacocc_core.synthetic_batch import camera_rig, synthetic_step_batch

TINY = load_preset("tiny")


def test_same_keys_and_dtypes_as_batch_at():
    step = synthetic_step_batch(TINY, batch_size=2, points_per_sweep=100, seed=3)
    frame = Frame(
        images=np.zeros((6, 64, 176, 3), np.uint8),
        cam2img=np.tile(np.eye(3), (6, 1, 1)),
        cam2lidar=np.tile(np.eye(4), (6, 1, 1)),
        points=np.zeros((4, 5), np.float32),
        lidar2global=np.eye(4),
        stamp_ns=0,
    )
    real = batch_at(frames_to_batch([[frame]], TINY.grid.spec().shape), 0)
    for key, value in step.items():
        assert value.dtype == real[key].dtype, key
        assert value.shape[1:] == real[key].shape[1:], key
    assert step["images"].shape[0] == 2 and step["points"].shape == (100 * 3 * 2, 5)
    assert set(step["points_batch"].tolist()) == {0, 1}
    assert (step["points"][:, 4] >= 0).all()


def test_cameras_look_outwards_with_nuscenes_yaws():
    cam2img, cam2lidar = camera_rig(TINY)
    front = cam2lidar[TINY.cameras.names.index("CAM_FRONT")]
    back = cam2lidar[TINY.cameras.names.index("CAM_BACK")]
    torch.testing.assert_close(front[:3, 2], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)  # LIDAR_TOP y ahead
    torch.testing.assert_close(back[:3, 2], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6, rtol=0)
    for m in cam2lidar:
        torch.testing.assert_close(m[:3, :3] @ m[:3, :3].T, torch.eye(3), atol=1e-6, rtol=0)
        assert torch.det(m[:3, :3]) > 0
    assert cam2img[0, 0, 2] == 88.0 and cam2img[0, 1, 2] == 32.0
