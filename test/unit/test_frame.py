import numpy as np
import pytest

from tacocc_core.frame import Frame


def make_frame(**overrides) -> Frame:
    fields = dict(
        images=np.zeros((6, 8, 16, 3), np.uint8),
        cam2img=np.tile(np.eye(3), (6, 1, 1)),
        cam2lidar=np.tile(np.eye(4), (6, 1, 1)),
        points=np.zeros((10, 5), np.float32),
        lidar2global=np.eye(4),
        stamp_ns=1,
    )
    fields.update(overrides)
    return Frame(**fields)


def test_valid_frame_defaults_all_cameras_valid():
    frame = make_frame(labels=np.zeros((4, 4, 2), np.uint8))
    assert frame.camera_valid.tolist() == [True] * 6
    assert frame.num_cameras == 6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"points": np.zeros((10, 4), np.float32)}, r"Frame.points: expected shape \(\*, 5\), got \(10, 4\)"),
        ({"points": np.zeros((10, 5), np.float64)}, "Frame.points: expected dtype float32, got float64"),
        ({"images": np.zeros((6, 8, 16, 3), np.float32)}, "Frame.images: expected dtype uint8"),
        ({"cam2img": np.tile(np.eye(3), (5, 1, 1))}, r"Frame.cam2img: expected shape \(6, 3, 3\), got \(5, 3, 3\)"),
        ({"labels": np.zeros((4, 4), np.uint8)}, "Frame.labels: expected shape"),
        ({"lidar2global": [[1.0]]}, "Frame.lidar2global: expected a numpy array, got list"),
    ],
)
def test_bad_fields_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_frame(**overrides)
