"""Time the renderer at a preset's sizes: one render, or one whole renderer training step.

    python -m benchmarks.speed.bench_render render --preset tiny                 # CPU: our EWA compositor
    python -m benchmarks.speed.bench_render render --preset nuscenes_r50_256x704 --device cuda  # gsplat
    python -m benchmarks.speed.bench_render step --preset tiny
    python -m benchmarks.speed.bench_render step --preset tiny --set inner_steps=2 --set neighbour_frames=0
    python -m benchmarks.speed.bench_render step --preset nuscenes_r50_256x704 --device cuda --backend gsplat

render: render 6 views + L_rgb + backward. Views: config.cameras.image_size * renderer.render_scale;
Gaussians: renderer.max_gaussians, spread over a ring 3-40 m around the vehicle (a stand-in for LiDAR + voxel
anchors), nuScenes-like camera ring.

step: what `SequentialRenderer.forward` + backward does for one frame: LiDAR and voxel anchors, the Gaussian
parameter net, `renderer.inner_steps` Gaussian-only steps (render + L_rgb + backward each), the render of
Theta^final, then L_pc + L_rgb backward into the net. Inputs: a dense random F~_IL (the ConvLSTM output is
dense, so every voxel is an anchor candidate), a random 30k-point cloud in the grid (none within 3 m of the
LiDAR), the same camera ring in (1 + 2 * renderer.neighbour_frames) frames (the temporal window when null),
random target images.

Prints the median and the spread of the repeats; a CPU timing depends on the load of the machine it runs on.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import yaml
from scipy.spatial.transform import Rotation

from tacocc_core.config import config_from_dict, config_to_dict, load_preset
from tacocc_core.losses.photometric import photometric_loss
from tacocc_core.render.gaussians import Gaussians, sh_coefficients
from tacocc_core.render.rasterize import render_views
from tacocc_core.render.sequential_renderer import SequentialRenderer
from tacocc_core.render.targets import RenderTargets

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


def time_render(args: argparse.Namespace) -> None:
    """One render of the views + L_rgb + backward, repeated."""
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


def time_step(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """One renderer training step for one frame, repeated."""
    data = config_to_dict(load_preset(args.preset))
    for text in args.overrides:
        key, _, value = text.partition("=")
        if key not in data["renderer"]:
            parser.error(f"--set {text}: renderer has no key {key!r}")
        data["renderer"][key] = yaml.safe_load(value)  # validated with the rest by config_from_dict
    config = config_from_dict(data)
    torch.manual_seed(0)
    renderer = SequentialRenderer.from_config(config, backend=args.backend).to(args.device)
    h, w = config.cameras.image_size
    height, width = round(h * config.renderer.render_scale), round(w * config.renderer.render_scale)
    views = len(config.cameras.names)
    neighbours = config.renderer.neighbour_frames
    frames = config.temporal.window if neighbours is None else 1 + 2 * neighbours
    c2l, k = camera_ring(views, width, height)
    targets = RenderTargets(
        images=torch.rand(frames, views, height, width, 3),
        valid=torch.ones(frames, views, height, width, dtype=torch.bool),
        cam2lidar=c2l[None].repeat(frames, 1, 1, 1),
        cam2img=k[None].repeat(frames, 1, 1, 1),
        times=0.5 * (torch.arange(frames, dtype=torch.float32) - frames // 2),  # 0.5 s frames, t in the middle
    )
    grid = renderer.grid
    lower, upper = torch.tensor(grid.lower), torch.tensor(grid.upper)
    points = lower + (upper - lower) * torch.rand(4 * args.points, 3)
    points = points[points[:, :2].norm(dim=1) > 3.0][: args.points]  # a LiDAR sees nothing on the ego vehicle
    points = torch.cat([points, torch.zeros(args.points, 2)], dim=1).to(args.device)
    features = torch.randn(config.temporal.hidden_channels, *grid.shape, device=args.device)
    cuda = args.device.startswith("cuda")

    def step():
        feats = features.clone().requires_grad_(True)
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        res = renderer(feats, points, targets, time_scale=0.5, generator=torch.Generator().manual_seed(0))
        (res.l_pc + res.l_rgb).backward()
        if cuda:
            torch.cuda.synchronize()  # host-device sync: the timing needs the kernels finished
        return time.perf_counter() - t0, time.process_time() - c0, res

    step()  # warm-up (gsplat compiles its kernels on first use)
    runs = [step() for _ in range(args.repeats)]
    times = [t for t, _, _ in runs]
    cpu = [c for _, c, _ in runs]
    res = runs[-1][2]
    print(
        f"{args.preset}: {frames} frame(s) x {views} views x {width}x{height}, {res.num_gaussians} Gaussians "
        f"({res.num_lidar} LiDAR + {res.num_voxel} voxel anchors), inner fit {config.renderer.inner_lr_schedule} "
        f"(cap {config.renderer.inner_steps}, tolerance {config.renderer.inner_tolerance} over "
        f"{config.renderer.inner_window} steps), "
        f"device {args.device}, backend {args.backend}, torch threads {torch.get_num_threads()}"
    )
    print(
        f"renderer training step (anchors + head + inner loop + final render + backward): median "
        f"{1000 * statistics.median(times):.0f} ms (min {1000 * min(times):.0f}, max {1000 * max(times):.0f}, "
        f"{args.repeats} repeats); process CPU time median {1000 * statistics.median(cpu):.0f} ms; "
        f"inner steps taken {res.inner_steps} (converged: {res.converged}), L_rgb {res.rgb_steps[0]:.4f} -> "
        f"{res.rgb_steps[-1]:.4f}"
    )
    if cuda:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True, metavar="{render,step}")
    for name, help_text, repeats in (
        ("render", "one render of 6 views + L_rgb + backward", 10),
        ("step", "one renderer training step (anchors, head, inner loop, final render, backward)", 5),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--preset", default="tiny")
        p.add_argument("--device", default="cpu")
        p.add_argument("--backend", default="auto", choices=("auto", "gsplat", "torch"))
        p.add_argument("--repeats", type=int, default=repeats)
        if name == "render":
            p.add_argument("--gaussians", type=int, default=0, help="override renderer.max_gaussians")
        else:
            p.add_argument("--points", type=int, default=30000, help="LiDAR points (anchors)")
            p.add_argument(
                "--set",
                dest="overrides",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="override a renderer setting of the preset, e.g. inner_steps=10 (repeatable)",
            )
    args = parser.parse_args()
    if args.what == "render":
        time_render(args)
    else:
        time_step(args, parser)


if __name__ == "__main__":
    main()
