import numpy as np
import torch

from tacocc_core.batch import batch_at
from tacocc_core.config import load_preset
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.synthetic_batch import synthetic_step_batch
from tacocc_core.timing import StageTimer


def sequence_batch(config, steps: int) -> dict:
    """T synthetic frames stacked into the (B=1, T) layout, the ego 1 m further along y each frame."""
    frames = [synthetic_step_batch(config, 1, 2000, seed=t) for t in range(steps)]
    batch = {k: torch.stack([f[k] for f in frames], dim=1) for k in frames[0] if k not in ("points", "points_batch")}
    batch["points"] = torch.cat([f["points"] for f in frames])
    batch["points_frame"] = torch.cat([torch.full((len(f["points"]),), t) for t, f in enumerate(frames)])
    poses = torch.eye(4, dtype=torch.float64).repeat(1, steps, 1, 1)
    poses[0, :, 1, 3] = torch.arange(steps, dtype=torch.float64)
    batch["lidar2global"] = poses
    batch["stamps_ns"] = torch.arange(steps).reshape(1, steps) * 100_000_000
    return batch


def test_sequence_equals_streaming_and_trains():
    config = load_preset("tiny")
    torch.manual_seed(0)
    model = TACOcc(config).eval()
    batch = sequence_batch(config, 3)
    with torch.no_grad():
        seq = model.forward_sequence(batch)
        state = None
        for t in range(3):
            out = model.forward_step(
                batch_at(batch, t), batch["lidar2global"][0, t].numpy(), int(batch["stamps_ns"][0, t]), "s", state
            )
            state = out.temporal.state
            torch.testing.assert_close(out.head.fine_logits, seq.heads[t].fine_logits, atol=1e-4, rtol=1e-4)
    assert seq.smoothed.shape == (1, 3, config.temporal.hidden_channels, 24, 24, 4)
    assert seq.heads[0].fine_logits.shape == (1, 17, 48, 48, 8)
    # One backward pass reaches every stage.
    model.train()
    seq = model.forward_sequence(batch, step=0)
    loss = sum(h.fine_logits.logsumexp(1).mean() + h.coarse_logits.square().mean() for h in seq.heads)
    loss.backward()
    for name in ("encoder.backbone", "encoder.lidar", "encoder.fuser", "temporal", "head"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name) and p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


def test_step_records_every_stage():
    config = load_preset("tiny")
    model = TACOcc(config).eval()
    timer = StageTimer("cpu")
    with torch.inference_mode():
        model.forward_step(synthetic_step_batch(config, 1, 2000), np.eye(4), 0, timer=timer)
    assert set(timer.ms) == {
        "conditioning",
        "image_branch",
        "view_transform",
        "lidar_branch",
        "fuser",
        "temporal",
        "head",
    }
    assert all(v > 0 for v in timer.ms.values())
