import numpy as np
import pytest

from tacocc_core.batch import batch_at, frames_to_batch
from tacocc_core.frame import Frame


def frame(seq: int, t: int, n_points: int, labelled: bool) -> Frame:
    rng = np.random.default_rng(seq * 10 + t)
    points = rng.normal(size=(n_points, 5)).astype(np.float32)
    points[:, 4] = seq * 10 + t  # tag each point with its frame
    return Frame(
        images=np.full((2, 4, 6, 3), seq * 10 + t, np.uint8),
        cam2img=np.tile(np.eye(3), (2, 1, 1)),
        cam2lidar=np.tile(np.eye(4), (2, 1, 1)),
        points=points,
        lidar2global=np.eye(4),
        stamp_ns=1000 * (seq * 10 + t),
        labels=np.full((3, 3, 2), t + 1, np.uint8) if labelled else None,
    )


def test_layout_and_time_slices():
    sequences = [[frame(s, t, 3 + s + t, labelled=(t != 1)) for t in range(3)] for s in range(2)]
    batch = frames_to_batch(sequences, (3, 3, 2))
    assert batch["images"].shape == (2, 3, 2, 3, 4, 6)
    assert batch["labels"].shape == (2, 3, 3, 3, 2)
    assert batch["has_labels"].tolist() == [[True, False, True]] * 2
    assert (batch["labels"][:, 1] == 255).all()
    assert batch["points"].shape[0] == sum(3 + s + t for s in range(2) for t in range(3))
    for t in range(3):
        step = batch_at(batch, t)
        assert step["images"].shape == (2, 2, 3, 4, 6)
        assert step["images"][1, 0, 0, 0, 0].item() == 10 + t
        for s in range(2):
            tags = step["points"][step["points_batch"] == s, 4]
            assert len(tags) == 3 + s + t and (tags == s * 10 + t).all()


def test_mismatched_inputs_are_reported():
    with pytest.raises(ValueError, match="sequences differ in length"):
        frames_to_batch([[frame(0, 0, 2, True)], [frame(1, 0, 2, True), frame(1, 1, 2, True)]], (3, 3, 2))
    with pytest.raises(ValueError, match=r"have shape \(3, 3, 2\), the grid is \(4, 4, 2\)"):
        frames_to_batch([[frame(0, 0, 2, True)]], (4, 4, 2))
    with pytest.raises(ValueError, match=r"time step 5 outside 0..0"):
        batch_at(frames_to_batch([[frame(0, 0, 2, True)]], (3, 3, 2)), 5)
