"""Time one renderer step: render 6 views + L_rgb + backward, at a preset's sizes.

    python benchmarks/bench_render.py --preset tiny                  # CPU: our EWA compositor
    python benchmarks/bench_render.py --preset nuscenes_r50_256x704 --device cuda   # gsplat when installed

Views: config.cameras.image_size * renderer.render_scale; Gaussians: renderer.max_gaussians, spread over a
ring 3-40 m around the vehicle (a stand-in for LiDAR + voxel anchors), nuScenes-like camera ring. Prints the
median and the spread of the repeats; a CPU timing depends on the load of the machine it runs on.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from tacocc_core.config import load_preset
from tacocc_core.losses.photometric import photometric_loss
from tacocc_core.render.gaussians import Gaussians, sh_coefficients
from tacocc_core.render.rasterize import render_views

YAWS_DEG = (0.0, -55.0, 55.0, 180.0, 110.0, -110.0)


def camera_ring(views: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cam2lidar (V, 4, 4) 1.5 m up looking outwards at the given yaws, and cam2img (V, 3, 3)."""
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    c2l = np.tile(np.eye(4), (views, 1, 1))
    for v in range(views):
        c2l[v, :3, :3] = Rotation.from_euler("z", YAWS_DEG[v % len(YAWS_DEG)], degrees=True).as_matrix() @ base
        c2l[v, :3, 3] = [0.5, 0.0, 1.5]
    f = 0.7 * width
    k = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return torch.tensor(c2l, dtype=torch.float32), torch.tensor(np.tile(k, (views, 1, 1)), dtype=torch.float32)


def scene(n: int, sh_degree: int, device: str) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    dist = 3.0 + torch.rand(n, generator=g) * 37.0
    means = torch.stack([dist * torch.cos(angle), dist * torch.sin(angle), torch.rand(n, generator=g) * 4 - 1], 1)
    gs = Gaussians(
        means=means,
        quats=torch.randn(n, 4, generator=g),
        scales=0.05 + torch.rand(n, 3, generator=g) * 0.4,
        opacities=0.2 + 0.7 * torch.rand(n, generator=g),
        sh=(torch.rand(n, sh_coefficients(sh_degree), 3, generator=g) - 0.5) * 0.5,
        mu_t=torch.zeros(n),
        sigma_t=torch.full((n,), 0.5),
    )
    return gs.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto", choices=("auto", "gsplat", "torch"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--gaussians", type=int, default=0, help="override renderer.max_gaussians")
    args = parser.parse_args()

    config = load_preset(args.preset)
    h, w = config.cameras.image_size
    scale = config.renderer.render_scale
    height, width = round(h * scale), round(w * scale)
    views = len(config.cameras.names)
    n = args.gaussians or config.renderer.max_gaussians
    c2l, k = camera_ring(views, width, height)
    c2l, k = c2l.to(args.device), k.to(args.device)
    start = scene(n, config.renderer.sh_degree, args.device)
    target = torch.rand(views, height, width, 3, device=args.device)

    def step() -> float:
        leaves = {name: value.detach().requires_grad_(True) for name, value in start.items()}
        gs = Gaussians(**leaves)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        rgb, _, _ = render_views(gs, c2l, k, width, height, t=0.1, backend=args.backend)
        loss = photometric_loss(rgb, target, None, config.renderer.dssim_lambda)
        loss.backward()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()  # host-device sync: the timing needs the kernels finished
        return time.perf_counter() - t0

    step()  # warm-up (gsplat compiles its kernels on first use)
    times = [step() for _ in range(args.repeats)]
    print(
        f"{args.preset}: {views} views x {width}x{height}, {n} Gaussians, device {args.device}, "
        f"backend {args.backend}, torch threads {torch.get_num_threads()}"
    )
    print(
        f"render + L_rgb + backward: median {1000 * statistics.median(times):.1f} ms "
        f"(min {1000 * min(times):.1f}, max {1000 * max(times):.1f}, {args.repeats} repeats)"
    )
    inner = config.renderer.inner_steps
    step_ms = (inner + 1) * 1000 * statistics.median(times)
    print(f"a renderer training step with {inner} inner steps + 1 outer render: ~{step_ms:.0f} ms")


if __name__ == "__main__":
    main()
