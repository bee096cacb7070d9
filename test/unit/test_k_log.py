import torch

from tacocc_core.model.fuser import KStats
from tacocc_core.train.k_log import KCounter, k_shares, k_side_by_side


def stats(counts):
    return KStats((1, 2, 3), torch.tensor(counts, dtype=torch.int64))


def test_counter_sums_frames_and_steps_then_starts_again():
    counter = KCounter()
    one = stats([[[[1, 2, 1]], [[0, 0, 4]]], [[[3, 0, 0]], [[0, 4, 0]]]])  # B=2, 2 modalities, 1 scale
    counter.add([one, one])
    total = counter.take()
    assert total == {"image": {0: {1: 8, 2: 4, 3: 2}}, "lidar": {0: {1: 0, 2: 8, 3: 8}}}
    assert counter.take() == {}
    shares = k_shares(total)
    assert shares["image_s0_k1"] == 8 / 14 and shares["lidar_s0_k3"] == 0.5


def test_side_by_side_line_per_modality_and_scale():
    train = {"image": {0: {1: 1, 2: 1, 3: 2}}}
    val = {"image": {0: {1: 0, 2: 4, 3: 0}}, "lidar": {0: {1: 1, 2: 0, 3: 0}}}
    text = k_side_by_side(train, val)
    assert "k 1/2/3 % image s0: train 25 / 25 / 50 | val 0 / 100 / 0" in text
    assert "lidar s0: train - | val 100 / 0 / 0" in text
