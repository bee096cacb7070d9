import numpy as np
import pytest
import torch

from tacocc_core.labels import PALETTE
from tacocc_core.train.progress import ProgressLine, TensorBoardLogger, bev_image, side_by_side


def test_bev_shows_the_highest_semantic_voxel_with_y_up():
    labels = np.zeros((4, 3, 5), np.uint8)
    labels[0, 0, 1] = 4  # car low
    labels[0, 0, 3] = 15  # vegetation above it: shown
    labels[3, 2, 0] = 11  # road at the far corner (+x, +y)
    labels[1, 1, :] = 255  # only ignore
    image = bev_image(torch.from_numpy(labels))
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[2, 0], PALETTE[15])  # x = 0, y = 0 -> bottom-left
    np.testing.assert_array_equal(image[0, 3], PALETTE[11])  # x = 3, y = 2 -> top-right
    np.testing.assert_array_equal(image[1, 1], [40, 40, 40])
    np.testing.assert_array_equal(image[2, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="expected \\(X, Y, Z\\) labels"):
        bev_image(np.zeros((2, 2), np.uint8))


def test_side_by_side():
    a, b = np.zeros((3, 2, 3), np.uint8), np.ones((3, 4, 3), np.uint8)
    out = side_by_side(a, b, gap=1)
    assert out.shape == (3, 7, 3) and (out[:, 2] == 255).all()
    with pytest.raises(ValueError, match="differ in height"):
        side_by_side(a, np.zeros((2, 2, 3), np.uint8))


def test_tensorboard_writes_on_rank0_only(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    silent = TensorBoardLogger(tmp_path / "rank1", enabled=False)
    silent.scalars(1, {"loss": 1.0})
    silent.image(1, "bev", np.zeros((2, 2, 3), np.uint8))
    silent.close()
    assert not (tmp_path / "rank1").exists()
    logger = TensorBoardLogger(tmp_path / "tb")
    logger.scalars(3, {"occ": 0.5, "rgb": 0.25}, prefix="loss")
    logger.image(3, "val/bev", np.full((4, 6, 3), 200, np.uint8))
    with pytest.raises(ValueError, match="expected \\(H, W, 3\\) uint8"):
        logger.image(3, "bad", np.zeros((4, 6), np.float32))
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Scalars("loss/occ")[0].value == 0.5 and events.Scalars("loss/rgb")[0].step == 3
    image = events.Images("val/bev")[0]
    assert (image.width, image.height) == (6, 4)


def test_progress_line_resumes_and_reports_throughput(capsys):
    line = ProgressLine(total_steps=10, start_step=4)
    line.update({"loss": 1.2345}, samples=2)
    assert line.bar.n == 5 and line.samples_per_s > 0
    assert "loss" in line.bar.postfix and "samples/s" in line.bar.postfix
    line.close()
    quiet = ProgressLine(total_steps=10, enabled=False)
    quiet.update({"loss": 1.0}, samples=1)
    quiet.write("not shown")
    quiet.close()
    assert "not shown" not in capsys.readouterr().out
