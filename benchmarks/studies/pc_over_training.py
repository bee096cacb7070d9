"""L_pc and L_rgb of the network's Theta^0 over a short training of the Gaussian parameter net on L_pc alone.

A reduced-scale check of the mechanism of paper Eq. 5, small enough for one CPU core: a scene of two walls
(red ahead, blue behind) seen by two cameras at 24 x 16 pixels; the "network" is a learnable sparse
feature volume (standing in for F~_IL) and the renderer's parameter net on the tiny preset's coarse grid.
Each outer step runs the inner fit from Theta^0 and takes one Adam step (--lr) on lambda L_pc. Printed
per variant every few steps: L_pc, L_rgb of Theta^0 (what the network's own Gaussians render) and L_rgb
of the fit, and the inner steps taken.

    python -m benchmarks.studies.pc_over_training --steps 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.config import config_from_dict, config_to_dict, load_preset
from tacocc_core.render.gaussians import Gaussians
from tacocc_core.render.rasterize import render_views
from tacocc_core.render.sequential_renderer import SequentialRenderer
from tacocc_core.render.targets import RenderTargets

H, W = 16, 24
VARIANTS = {
    "converged fit (3DGS rates, tolerance 0.02 over 10 steps, cap 300), L_pc sum": dict(
        inner_lr_schedule="3dgs", inner_steps=300, inner_tolerance=0.02, inner_window=10, pc_reduction="sum"
    ),
    "earlier loop (10 steps at one rate 0.2), L_pc mean": dict(
        inner_lr_schedule="uniform", inner_lr=0.2, inner_steps=10, inner_tolerance=0.0, pc_reduction="mean"
    ),
}


def scene(seed: int = 0) -> tuple[torch.Tensor, RenderTargets]:
    """(P, 5) LiDAR points on two walls 8 m ahead and behind, and two camera images of them."""
    g = torch.Generator().manual_seed(seed)
    n = 300
    y, z = torch.rand(n, generator=g) * 12 - 6, torch.rand(n, generator=g) * 4 - 1
    x = torch.where(torch.arange(n) % 2 == 0, 8.3, -8.3)
    points = torch.stack([x, y, z, torch.ones(n), torch.zeros(n)], dim=1)
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    c2l = np.tile(np.eye(4), (2, 1, 1))
    for v, yaw in enumerate((0.0, 180.0)):
        c2l[v, :3, :3] = Rotation.from_euler("z", yaw, degrees=True).as_matrix() @ base
        c2l[v, :3, 3] = [0.5, 0.0, 1.5]
    k = np.tile(np.array([[0.7 * W, 0.0, W / 2], [0.0, 0.7 * W, H / 2], [0.0, 0.0, 1.0]]), (2, 1, 1))
    c2l_t, k_t = torch.tensor(c2l, dtype=torch.float32), torch.tensor(k, dtype=torch.float32)
    colour = torch.where((x > 0)[:, None], torch.tensor([0.45, -0.3, -0.3]), torch.tensor([-0.3, -0.2, 0.45]))
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
        rgb, _, _ = render_views(truth, c2l_t, k_t, W, H)
    targets = RenderTargets(
        images=rgb.clamp(0, 1)[None],
        valid=torch.ones(1, 2, H, W, dtype=torch.bool),
        cam2lidar=c2l_t[None],
        cam2img=k_t[None],
        times=torch.zeros(1),
    )
    return points, targets


def run(settings: dict, steps: int, every: int, lam: float, lr: float) -> None:
    data = config_to_dict(load_preset("tiny"))
    data["renderer"].update(
        dict(max_gaussians=300, lidar_anchors=150, head_channels=8, neighbour_frames=0, render_scale=1.0)
    )
    data["renderer"].update(settings)
    config = config_from_dict(data)
    torch.manual_seed(0)
    renderer = SequentialRenderer.from_config(config, backend="torch")
    points, targets = scene()
    grid = renderer.grid
    features = torch.zeros(renderer.head.in_channels, *grid.shape)
    idx, inside = grid.point_to_index(points[:, :3].numpy())
    idx = torch.from_numpy(idx[inside])
    g = torch.Generator().manual_seed(0)
    features[:, idx[:, 0], idx[:, 1], idx[:, 2]] = torch.randn(features.shape[0], len(idx), generator=g)
    features.requires_grad_(True)
    optimiser = torch.optim.Adam([features, *renderer.head.parameters()], lr=lr)
    print("| step | L_pc | L_rgb of Theta^0 | L_rgb after the fit | inner steps | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for step in range(steps + 1):
        start = time.perf_counter()
        res = renderer(features, points, targets, generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - start
        if step % every == 0 or step == steps:
            print(
                f"| {step} | {res.l_pc.item():.4g} | {res.rgb_steps[0]:.4f} | {res.rgb_steps[-1]:.4f} | "
                f"{res.inner_steps} | {seconds:.2f} |",
                flush=True,
            )
        if step < steps:
            optimiser.zero_grad()
            (lam * res.l_pc).backward()
            optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--pc-lambda", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate of the outer steps")
    args = parser.parse_args()
    for name, settings in VARIANTS.items():
        print(f"\n{name}; lambda {args.pc_lambda}, {args.steps} outer steps at lr {args.lr}")
        run(settings, args.steps, args.every, args.pc_lambda, args.lr)


if __name__ == "__main__":
    main()
