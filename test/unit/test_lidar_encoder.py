import dataclasses

import pytest
import torch

from tacocc_core.config import load_preset
from tacocc_core.model.lidar_encoder import LidarEncoder
from tacocc_core.model.voxelize import voxelize

TINY = load_preset("tiny")


def cloud(n: int = 800, b: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(n, 5, generator=gen) * torch.tensor([8.0, 8.0, 1.0, 50.0, 0.1])
    points[:, 4] = points[:, 4].abs()
    return points, torch.randint(0, b, (n,), generator=gen)


def test_volume_on_the_coarse_grid_covers_every_input_voxel():
    torch.manual_seed(0)
    encoder = LidarEncoder(TINY).eval()
    points, batch = cloud()
    with torch.no_grad():
        volume, occupied = encoder(points, batch, 2)
    assert volume.shape == (2, 16, 24, 24, 4) and occupied.shape == (2, 24, 24, 4)
    _, coords = voxelize(points, batch, TINY.grid.spec())
    c = coords.long()
    assert occupied[c[:, 0], c[:, 1] // 2, c[:, 2] // 2, c[:, 3] // 2].all()
    assert (volume.abs().sum(1)[~occupied] == 0).all()  # nothing outside the active sites


def test_cpu_training_backward_reaches_every_sparse_conv():
    torch.manual_seed(0)
    encoder = LidarEncoder(TINY).train()
    points, batch = cloud()
    volume, _ = encoder(points, batch, 2)
    (volume * torch.randn_like(volume)).sum().backward()
    weights = [p for name, p in encoder.named_parameters() if name.endswith("weight") and p.dim() == 5]
    assert len(weights) == 3  # SubM (fine), SparseConv stride 2, SubM (coarse)
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in weights)


def test_bad_and_empty_clouds_give_valid_empty_volumes():
    encoder = LidarEncoder(TINY).eval()
    nan = torch.full((5, 5), float("nan"))
    far = torch.full((5, 5), 500.0)
    for points in (torch.zeros(0, 5), nan, far):
        with torch.no_grad():
            volume, occupied = encoder(points, torch.zeros(len(points), dtype=torch.int64), 1)
        assert volume.shape == (1, 16, 24, 24, 4) and not occupied.any() and (volume == 0).all()


def test_too_few_stages_for_the_downsampling_is_rejected():
    config = dataclasses.replace(TINY, lidar=dataclasses.replace(TINY.lidar, encoder_channels=(8,)))
    with pytest.raises(ValueError, match=r"encoder_channels \(8,\) has 1 stages; .* needs at least 2"):
        LidarEncoder(config)
