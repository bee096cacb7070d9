"""Measurements behind the renderer's preset settings, on generated (or real) nuScenes-layout scenes.

    python -m benchmarks.studies.measure_renderer anchors --data DATA [--checkpoint C] [--windows 8]
    python -m benchmarks.studies.measure_renderer inner-loop --data DATA [--checkpoint C] [--steps 40] \
        [--lrs 0.01,0.05,0.2]
    python -m benchmarks.studies.measure_renderer pc-sensitivity --data DATA [--checkpoint C] \
        [--inner-sgd LRS] [--inner-lbfgs]
    python -m benchmarks.studies.measure_renderer fit --data DATA [--checkpoint C] [--windows 3] [--max-steps N] \
        [--tolerance F] [--window N] [--fixed]

Each runs the network (the checkpoint's weights, or the preset's initial weights of --seed) over 3-frame
windows of the `val` split and reports, per frame (t = 1, the middle one):
- anchors: the share of voxel anchors that lie in coarse voxels occupied in the ground truth (a coarse
  voxel is occupied when any of its fine voxels carries a label 1..16), for each voxel anchor source: the
  two the renderer offers ("feature_norm", "predicted") and two readings measured here only ("lidar": the
  LiDAR volume F_L's non-zero voxels; "predicted_or_lidar": either);
- inner-loop: L_rgb of the Gaussians after 0, 1, 2, ... Adam steps at each learning rate (the first case
  of Eq. 5), averaged over the windows;
- pc-sensitivity: L_pc of a fixed-step uniform-rate loop started from the network's Theta^0 and from
  nearly converged Gaussians, for Adam and the alternatives asked for;
- fit: the preset's inner fit (per-group rates, convergence rule, step cap) from the network's Theta^0:
  L_rgb before and after, steps, whether it converged, seconds, L_pc (sum and mean); beside it the fixed
  10-step loop at one rate 0.2 of the earlier presets; with --fixed also the same fit started from
  network-independent Gaussians at the same anchors (the head's output at raw = 0: what a per-frame cache
  could hold), and how far its result lies from the fit started at Theta^0.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from tacocc_core.batch import frames_to_batch
from tacocc_core.checkpoint import load_checkpoint
from tacocc_core.config import ModelConfig, config_from_dict, config_to_dict, load_preset
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.data.sequences import scene_samples, split_scenes, windows
from tacocc_core.labels import IGNORE
from tacocc_core.losses.photometric import photometric_loss
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.render.anchors import lidar_anchors, masked_voxel_anchors, predicted_voxel_mask, voxel_anchors
from tacocc_core.render.free_params import detached_copy, free_to_gaussians, parameter_consistency
from tacocc_core.render.inner_loop import InnerSchedule, optimise_gaussians
from tacocc_core.render.sequential_renderer import SequentialRenderer, render_into_targets
from tacocc_core.render.targets import frame_interval, frame_points, window_targets

SOURCES = ("feature_norm", "predicted", "lidar", "predicted_or_lidar")


def candidate_voxels(source: str, coarse_logits: torch.Tensor, lidar_occupied: torch.Tensor):
    """(X, Y, Z) candidate voxels and their 1 - p(empty) ranking for the mask sources of SOURCES."""
    predicted, score = predicted_voxel_mask(coarse_logits)
    lidar = lidar_occupied.bool()
    return {"predicted": predicted, "lidar": lidar, "predicted_or_lidar": predicted | lidar}[source], score


def load_network(args: argparse.Namespace) -> tuple[ModelConfig, TACOcc]:
    if args.checkpoint:
        payload = load_checkpoint(args.checkpoint)
        config = payload["config"]
        net = TACOcc(config)
        net.load_state_dict({k: v.float() for k, v in payload["model"].items()})
    else:
        config = load_preset(args.preset)
        torch.manual_seed(args.seed)
        net = TACOcc(config)
    return config, net.eval()


def val_windows(config: ModelConfig, data: str, version: str, count: int) -> tuple[NuScenesReader, list[list[str]]]:
    reader = NuScenesReader.open(data, version, config)
    scenes = [scene_samples(reader.nusc, name) for name in split_scenes(reader.nusc, "val")]
    found = windows(scenes, 3, stride=3)
    return reader, found[:count]


def coarse_truth(labels: torch.Tensor, ratio: int) -> torch.Tensor:
    """(X, Y, Z) fine labels -> (X/r, Y/r, Z/r) bool: any fine voxel labelled 1..16."""
    occ = ((labels >= 1) & (labels != IGNORE)).float()[None, None]
    return torch.nn.functional.max_pool3d(occ, ratio)[0, 0] > 0


def forward(net: TACOcc, batch: dict[str, torch.Tensor]):
    with torch.no_grad():
        return net.forward_sequence(batch)


def measure_anchors(args: argparse.Namespace) -> None:
    config, net = load_network(args)
    renderer = SequentialRenderer.from_config(config)
    grid, r = renderer.grid, config.renderer
    reader, found = val_windows(config, args.data, args.version, args.windows)
    shares: dict[str, list[float]] = {s: [] for s in SOURCES}
    counts: dict[str, list[int]] = {s: [] for s in SOURCES}
    base = []
    for tokens in found:
        batch = frames_to_batch([[reader.frame(tok) for tok in tokens]], config.grid.spec().shape)
        seq = forward(net, batch)
        t = 1
        truth = coarse_truth(batch["labels"][0, t], config.head.coarse_downsample)
        base.append(float(truth.float().mean()))
        n_lidar = lidar_anchors(frame_points(batch, 0, t), grid, min(r.lidar_anchors, r.max_gaussians)).shape[0]
        budget = r.max_gaussians - n_lidar
        for source in SOURCES:
            if source == "feature_norm":
                _, index = voxel_anchors(seq.smoothed[0, t], grid, budget, r.voxel_threshold)
            else:
                mask, score = candidate_voxels(source, seq.heads[t].coarse_logits[0], seq.encoder[t].lidar_occupied[0])
                _, index = masked_voxel_anchors(mask, score, grid, budget)
            hit = truth[index[:, 0], index[:, 1], index[:, 2]]
            shares[source].append(float(hit.float().mean()) if len(index) else float("nan"))
            counts[source].append(len(index))
    weights = args.checkpoint or f"initial weights of {args.preset}, seed {args.seed}"
    print(
        f"{len(found)} windows of {args.data} (val), frame t=1; network: {weights}; voxel budget per frame "
        f"max_gaussians - LiDAR anchors; coarse grid {grid.shape}"
    )
    print(f"share of coarse voxels occupied in the ground truth: {100 * statistics.mean(base):.1f} %")
    print("| voxel anchor source | voxel anchors per frame | share on occupied ground-truth voxels |")
    print("|---|---:|---:|")
    for source in SOURCES:
        vals = [v for v in shares[source] if v == v]
        share = f"{100 * statistics.mean(vals):.1f} %" if vals else "-"
        print(f"| {source} | {statistics.mean(counts[source]):.0f} | {share} |")


def frame_setup(config: ModelConfig, renderer: SequentialRenderer, batch, seq, t: int = 1, raw_zero: bool = False):
    """(Theta^0 of frame t, its render targets); with raw_zero the head's output at raw = 0 instead."""
    r = renderer.settings
    sky = torch.stack([e.sky_masks for e in seq.encoder], dim=1)
    targets = window_targets(batch, 0, t, r.neighbour_frames, r.render_scale, sky)
    features = seq.smoothed[0, t]
    lidar = lidar_anchors(
        frame_points(batch, 0, t),
        renderer.grid,
        min(r.lidar_anchors, r.max_gaussians),
        torch.Generator().manual_seed(0),
    )
    mask, score = (
        predicted_voxel_mask(seq.heads[t].coarse_logits[0]) if r.voxel_anchor_source == "predicted" else (None, None)
    )
    if mask is None:
        voxel, _ = voxel_anchors(features, renderer.grid, r.max_gaussians - lidar.shape[0], r.voxel_threshold)
    else:
        voxel, _ = masked_voxel_anchors(mask, score, renderer.grid, r.max_gaussians - lidar.shape[0])
    anchors = torch.cat([lidar, voxel.to(lidar.dtype)])
    is_lidar = torch.arange(anchors.shape[0], device=anchors.device) < lidar.shape[0]
    with torch.no_grad():
        theta0 = renderer.head(features, anchors, is_lidar, frame_interval(batch, 0))
        if raw_zero:
            last = renderer.head.mlp[-1]
            saved = last.weight.clone(), last.bias.clone()
            last.weight.zero_()
            last.bias.zero_()
            theta0 = renderer.head(features, anchors, is_lidar, frame_interval(batch, 0))
            last.weight.copy_(saved[0])
            last.bias.copy_(saved[1])
    return theta0, targets


def measure_inner_loop(args: argparse.Namespace) -> None:
    config, net = load_network(args)
    data = config_to_dict(config)
    data["renderer"]["neighbour_frames"] = args.neighbours
    config = config_from_dict(data)
    torch.manual_seed(args.seed)
    renderer = SequentialRenderer.from_config(config)
    reader, found = val_windows(config, args.data, args.version, args.windows)
    lrs = [float(v) for v in args.lrs.split(",")]
    curves: dict[float, list[list[float]]] = {lr: [] for lr in lrs}
    for tokens in found:
        batch = frames_to_batch([[reader.frame(tok) for tok in tokens]], config.grid.spec().shape)
        seq = forward(net, batch)
        theta0, targets = frame_setup(config, renderer, batch, seq)
        images = targets.images.flatten(0, 1)
        valid = targets.valid.flatten(0, 1)
        for lr in lrs:
            theta = detached_copy(theta0)
            opt = torch.optim.Adam(list(theta.values()), lr=lr)
            curve = []
            for _ in range(args.steps + 1):
                rgb, _ = render_into_targets(free_to_gaussians(theta), targets, "torch")
                loss = photometric_loss(rgb, images, valid, config.renderer.dssim_lambda)
                curve.append(loss.item())
                opt.zero_grad()
                loss.backward()
                opt.step()
            curves[lr].append(curve)
    shown = sorted({0, 1, 2, 3, 5, 10, 20, 40, 80, args.steps} & set(range(args.steps + 1)))
    print(
        f"{len(found)} windows, frame t=1, {config.name}, neighbour_frames {args.neighbours}, "
        f"{theta0['means'].shape[0]} Gaussians (last window); mean L_rgb after n Adam steps"
    )
    print("| lr | " + " | ".join(f"n={n}" for n in shown) + " |")
    print("|---|" + "---:|" * len(shown))
    for lr in lrs:
        mean = [statistics.mean(c[n] for c in curves[lr]) for n in shown]
        print(f"| {lr} | " + " | ".join(f"{v:.4f}" for v in mean) + " |")


def gradient_descent(theta0, loss_fn, steps: int, lr: float):
    """`steps` plain gradient-descent steps on a detached copy of Theta^0 (a step that shrinks with the gradient)."""
    theta = detached_copy(theta0)
    optimiser = torch.optim.SGD(list(theta.values()), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss_fn(theta).backward()
        optimiser.step()
    return {k: v.detach() for k, v in theta.items()}


def lbfgs(theta0, loss_fn, steps: int, history: int = 10):
    """`steps` L-BFGS iterations (torch.optim.LBFGS, strong-Wolfe line search) on a detached copy of Theta^0.

    Its step comes from curvature estimates and a line search, so it shrinks where the loss is flat: a loop
    that can converge from far and stay put at an optimum, which is what L_pc assumes of the inner loop.
    """
    theta = detached_copy(theta0)
    optimiser = torch.optim.LBFGS(
        list(theta.values()), lr=1.0, max_iter=steps, history_size=history, line_search_fn="strong_wolfe"
    )

    def closure():
        optimiser.zero_grad()
        loss = loss_fn(theta)
        loss.backward()
        return loss

    optimiser.step(closure)
    return {k: v.detach() for k, v in theta.items()}


def measure_pc_sensitivity(args: argparse.Namespace) -> None:
    """L_pc of an inner loop from the network's Theta^0 and from a nearly converged Theta.

    L_pc is meant as the distance from Theta^0 to photometrically converged Gaussians, so it should be small
    from a Theta that is already nearly converged. Theta^near: `--steps` Adam steps at lr 0.2 from Theta^0.
    The inner loop: the preset's (Adam, `renderer.inner_steps` at `renderer.inner_lr`), or with
    `--inner-sgd LR,...` plain gradient descent at those learning rates for the same number of steps, and with
    `--inner-lbfgs` L-BFGS for the same number of iterations.
    """
    config, net = load_network(args)
    data = config_to_dict(config)
    data["renderer"]["neighbour_frames"] = args.neighbours
    config = config_from_dict(data)
    r = config.renderer
    torch.manual_seed(args.seed)
    renderer = SequentialRenderer.from_config(config)
    reader, found = val_windows(config, args.data, args.version, args.windows)
    loops = [
        (
            f"Adam, lr {r.inner_lr}",
            lambda t, f: optimise_gaussians(t, f, InnerSchedule.uniform(r.inner_lr, r.inner_steps)).theta,
        )
    ]
    for lr in [float(v) for v in args.inner_sgd.split(",") if v]:
        loops.append((f"gradient descent, lr {lr:g}", lambda t, f, lr=lr: gradient_descent(t, f, r.inner_steps, lr)))
    if args.inner_lbfgs:
        loops.append(("L-BFGS", lambda t, f: lbfgs(t, f, r.inner_steps)))
    rows: dict[str, list[list[float]]] = {name: [] for name, _ in loops}
    for tokens in found:
        batch = frames_to_batch([[reader.frame(tok) for tok in tokens]], config.grid.spec().shape)
        seq = forward(net, batch)
        theta0, targets = frame_setup(config, renderer, batch, seq)
        images, valid = targets.images.flatten(0, 1), targets.valid.flatten(0, 1)

        def l_rgb(theta, targets=targets, images=images, valid=valid):
            rgb, _ = render_into_targets(free_to_gaussians(theta), targets, "torch")
            return photometric_loss(rgb, images, valid, r.dssim_lambda)

        near = optimise_gaussians(theta0, l_rgb, InnerSchedule.uniform(0.2, args.steps)).theta
        for name, loop in loops:
            row = []
            for start in (theta0, near):
                final = loop(start, l_rgb)
                with torch.no_grad():
                    row += [l_rgb(start).item(), l_rgb(final).item(), float(parameter_consistency(final, start))]
            rows[name].append(row)
    print(
        f"{len(found)} windows, frame t=1, {config.name}, inner loop of {r.inner_steps} steps, neighbour_frames "
        f"{args.neighbours}; Theta^near = {args.steps} Adam steps at lr 0.2 from Theta^0"
    )
    print("| inner loop | start | L_rgb there | L_rgb after the loop | L_pc |")
    print("|---|---|---:|---:|---:|")
    for name, _ in loops:
        mean = [statistics.mean(row[i] for row in rows[name]) for i in range(6)]
        print(f"| {name} | network's Theta^0 | {mean[0]:.4f} | {mean[1]:.4f} | {mean[2]:.3f} |")
        print(f"| {name} | nearly converged Theta^near | {mean[3]:.4f} | {mean[4]:.4f} | {mean[5]:.3f} |")


def l1_sum(a, b) -> float:
    return float(parameter_consistency(a, b, "sum"))


def measure_fit(args: argparse.Namespace) -> None:
    """The preset's inner fit on frame t=1 of `--windows` val windows; see the module docstring."""
    import time

    config, net = load_network(args)
    data = config_to_dict(config)
    data["renderer"].update(
        {
            "inner_lr_schedule": "3dgs",
            "neighbour_frames": None,
            **({"inner_steps": args.max_steps} if args.max_steps else {}),
            **({"inner_tolerance": args.tolerance} if args.tolerance is not None else {}),
            **({"inner_window": args.window} if args.window else {}),
        }
    )
    config = config_from_dict(data)
    r = config.renderer
    torch.manual_seed(args.seed)
    renderer = SequentialRenderer.from_config(config)
    if args.checkpoint:
        state = load_checkpoint(args.checkpoint).get("renderer")
        if state:
            renderer.load_state_dict(state)
    device = torch.device(args.device)
    backend = "auto" if device.type == "cuda" else "torch"
    net, renderer = net.to(device), renderer.to(device)
    reader, found = val_windows(config, args.data, args.version, args.first + args.windows)
    found = found[args.first :]
    rows = []
    for tokens in found:
        batch = frames_to_batch([[reader.frame(tok) for tok in tokens]], config.grid.spec().shape)
        batch = {k: v.to(device) for k, v in batch.items()}
        seq = forward(net, batch)
        theta0, targets = frame_setup(config, renderer, batch, seq)
        images, valid = targets.images.flatten(0, 1).to(device), targets.valid.flatten(0, 1).to(device)

        def l_rgb(theta, targets=targets, images=images, valid=valid):
            rgb, _ = render_into_targets(free_to_gaussians(theta), targets, backend)
            return photometric_loss(rgb, images, valid, r.dssim_lambda)

        schedule = renderer.schedule(targets)
        print("window tokens:", tokens, flush=True)
        start = time.perf_counter()
        fit = optimise_gaussians(theta0, l_rgb, schedule)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        today = optimise_gaussians(theta0, l_rgb, InnerSchedule.uniform(0.2, 10)).theta
        n = theta0["means"].shape[0]
        with torch.no_grad():
            row = {
                "gaussians": n,
                "views": images.shape[0],
                "rgb0": l_rgb(theta0).item(),
                "rgb_fit": l_rgb(fit.theta).item(),
                "steps": fit.steps,
                "converged": float(fit.converged),
                "seconds": seconds,
                "seconds_per_step": seconds / max(fit.steps, 1),
                "pc_sum": l1_sum(fit.theta, theta0),
                "rgb_today": l_rgb(today).item(),
                "pc_today_sum": l1_sum(today, theta0),
            }
        print("L_rgb every 50 steps of the fit from Theta^0:", [round(v, 4) for v in fit.losses[::50]], flush=True)
        print(
            "window", len(rows) + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True
        )
        if args.fixed:
            fixed0, _ = frame_setup(config, renderer, batch, seq, raw_zero=True)
            fixed = optimise_gaussians(fixed0, l_rgb, schedule)
            with torch.no_grad():
                row.update(
                    {
                        "rgb_fixed0": l_rgb(fixed0).item(),
                        "rgb_fixed": l_rgb(fixed.theta).item(),
                        "steps_fixed": fixed.steps,
                        "pc_fixed_sum": l1_sum(fixed.theta, theta0),
                        "fit_gap_sum": l1_sum(fixed.theta, fit.theta),
                    }
                )
            print("L_rgb every 50 steps of the fit from fixed Gaussians:", [round(v, 4) for v in fixed.losses[::50]])
            print("window", len(rows) + 1, "fixed start:", {k: round(v, 4) for k, v in row.items()}, flush=True)
        rows.append(row)
    weights = args.checkpoint or f"initial weights of {args.preset}, seed {args.seed}"
    print(
        f"{len(found)} windows of {args.data} (val), frame t=1, rendered into every frame of the window; network: "
        f"{weights}; fit: 3DGS rates (means x {renderer.extent_m:.1f} m), tolerance {r.inner_tolerance} over "
        f"{r.inner_window} steps, cap {r.inner_steps}"
    )
    print("| quantity | mean | per window |")
    print("|---|---:|---|")
    for key in rows[0]:
        vals = [row[key] for row in rows]
        print(f"| {key} | {statistics.mean(vals):.4g} | {', '.join(f'{v:.4g}' for v in vals)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("anchors", "inner-loop", "pc-sensitivity", "fit"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--version", default="v1.0-mini")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lrs", default="0.01,0.05,0.2")
    parser.add_argument("--neighbours", type=int, default=1)
    parser.add_argument("--inner-sgd", default="", help="pc-sensitivity: also gradient descent at these lrs")
    parser.add_argument("--inner-lbfgs", action="store_true", help="pc-sensitivity: also L-BFGS")
    parser.add_argument("--max-steps", type=int, default=0, help="fit: step cap (default: the preset's)")
    parser.add_argument("--tolerance", type=float, default=None, help="fit: convergence tolerance (the preset's)")
    parser.add_argument("--window", type=int, default=0, help="fit: convergence window (default: the preset's)")
    parser.add_argument("--fixed", action="store_true", help="fit: also from network-independent Gaussians")
    parser.add_argument("--device", default="cpu", help="fit: cpu, or cuda (then gsplat renders)")
    parser.add_argument("--first", type=int, default=0, help="fit: skip this many windows")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    {
        "anchors": measure_anchors,
        "inner-loop": measure_inner_loop,
        "pc-sensitivity": measure_pc_sensitivity,
        "fit": measure_fit,
    }[args.what](args)


if __name__ == "__main__":
    main()
