"""Time one renderer training step for one frame at a preset's sizes.

    python benchmarks/bench_render_step.py --preset tiny                                   # CPU
    python benchmarks/bench_render_step.py --preset tiny --set inner_steps=2 --set neighbour_frames=0
    python benchmarks/bench_render_step.py --preset nuscenes_r50_256x704 --device cuda     # gsplat on a GPU

A step is what `SequentialRenderer.forward` + backward does: LiDAR and voxel anchors, the Gaussian
parameter net, `renderer.inner_steps` Gaussian-only steps (render + L_rgb + backward each), the render of
Theta^final, then L_pc + L_rgb backward into the net. Inputs: a dense random F~_IL (the ConvLSTM output is
dense, so every voxel is an anchor candidate), a random 30k-point cloud in the grid (none within 3 m of the
LiDAR), the nuScenes-like camera ring of `bench_render.py` in (1 + 2 * renderer.neighbour_frames) frames
(the temporal window when null), random target images. A CPU timing depends on the load of the machine it runs on.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml
from bench_render import camera_ring

from tacocc_core.config import config_from_dict, config_to_dict, load_preset
from tacocc_core.render.sequential_renderer import SequentialRenderer
from tacocc_core.render.targets import RenderTargets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto", choices=("auto", "gsplat", "torch"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, default=30000)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a renderer setting of the preset, e.g. inner_steps=10 (repeatable)",
    )
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
