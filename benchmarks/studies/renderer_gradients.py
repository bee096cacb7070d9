"""How much gradient the renderer's terms send into the occupancy network, next to the occupancy loss's.

For a few training windows, the training objective runs twice on the same weights and batch: renderer off
(total = L_occ) and renderer on (total = (1 - lambda) L_occ + lambda L_pc + L_rgb, paper Eq. 5). The
network's forward is the same in both (the fuser's noise is keyed by the frames' stamps), so
g_render = g_on - (1 - lambda) g_off is the gradient that lambda L_pc + L_rgb send into the network's
weights (the renderer's own parameter net and beta excluded). Printed per module group, averaged over the
windows: ||(1 - lambda) g_occ||, ||g_render||, their ratio, and the cosine between the two.

    python -m benchmarks.studies.renderer_gradients --checkpoint checkpoints/demo.pt \
        --data data/synth10_objects --step 1000 --windows 3 [--renderer-from demo] [--set inner_steps=20]

--renderer-from PRESET takes the renderer settings of a preset instead of the checkpoint's; --set KEY=VALUE
(repeatable) overrides one of them. L_pc is an L1 distance, so its gradient into Theta^0 is the sign of
each coordinate's move: once the fit has moved every coordinate, a capped fit and a converged one send
gradients of the same size.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
import yaml

from benchmarks.studies import gradient_windows
from tacocc_core.config import load_preset
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.train.objective import TrainingObjective
from tacocc_core.train.train_config import TrainConfig

GROUPS = {
    "image branch": ("encoder.backbone.", "encoder.view_transform."),
    "LiDAR branch": ("encoder.lidar.",),
    "fuser": ("encoder.fuser.",),
    "temporal": ("temporal.",),
    "head": ("head.",),
}


def network_gradient(objective: TrainingObjective, batch: dict, step: int) -> dict[str, torch.Tensor]:
    """{parameter name: gradient} of the objective's total over the network's weights (zeros where none)."""
    objective.zero_grad(set_to_none=True)
    objective(batch, step).total.backward()
    return {
        name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in objective.net.named_parameters()
    }


def group_norms(grads: dict[str, torch.Tensor]) -> dict[str, float]:
    out = {}
    for group, prefixes in GROUPS.items():
        parts = [g.float().pow(2).sum() for n, g in grads.items() if n.startswith(prefixes)]
        out[group] = float(torch.sqrt(sum(parts))) if parts else float("nan")
    out["whole network"] = float(torch.sqrt(sum(g.float().pow(2).sum() for g in grads.values())))
    return out


def cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    dot = sum(float((a[n].float() * b[n].float()).sum()) for n in a)
    na = float(torch.sqrt(sum(g.float().pow(2).sum() for g in a.values())))
    nb = float(torch.sqrt(sum(g.float().pow(2).sum() for g in b.values())))
    return dot / max(na * nb, 1e-30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gradient_windows.add_arguments(parser, windows=3)
    parser.add_argument("--pc-lambda", type=float, default=None, help="lambda of Eq. 5 (default: the config's)")
    parser.add_argument("--renderer-from", default=None, help="take the renderer settings of this preset")
    parser.add_argument("--set", action="append", default=[], help="renderer KEY=VALUE override (repeatable)")
    args = parser.parse_args()

    state, config = gradient_windows.weights(args)
    renderer = load_preset(args.renderer_from).renderer if args.renderer_from else config.renderer
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    renderer = dataclasses.replace(renderer, enabled=True, **overrides)
    if args.pc_lambda is not None:
        renderer = dataclasses.replace(renderer, pc_lambda=args.pc_lambda)
    config = dataclasses.replace(config, renderer=renderer)
    net = TACOcc(config)
    if state is not None:
        net.load_state_dict(state)
    off = TrainingObjective(config, dataclasses.replace(TrainConfig(), renderer=False), net=net).train()
    on = TrainingObjective(config, dataclasses.replace(TrainConfig(), renderer=True), net=net).train()
    keep = 1.0 - config.renderer.pc_lambda

    occ_sum: dict[str, float] = {}
    render_sum: dict[str, float] = {}
    cosines = []
    for batch in gradient_windows.training_windows(args, config):
        g_occ = {n: keep * g for n, g in network_gradient(off, batch, args.step).items()}
        g_on = network_gradient(on, batch, args.step)
        g_render = {n: g_on[n] - g_occ[n] for n in g_on}
        for name, value in group_norms(g_occ).items():
            occ_sum[name] = occ_sum.get(name, 0.0) + value / args.windows
        for name, value in group_norms(g_render).items():
            render_sum[name] = render_sum.get(name, 0.0) + value / args.windows
        cosines.append(cosine(g_occ, g_render))
    print(
        f"{gradient_windows.source(args)}, step {args.step}, {args.windows} windows of {args.data} ({args.split}), "
        f"lambda {1 - keep:g}; renderer: inner_lr_schedule {renderer.inner_lr_schedule}, inner_steps "
        f"{renderer.inner_steps}, tolerance {renderer.inner_tolerance}, pc_reduction {renderer.pc_reduction}, "
        f"neighbour_frames {renderer.neighbour_frames}"
    )
    print("| module group | (1 - lambda) L_occ | lambda L_pc + L_rgb | ratio |")
    print("|---|---:|---:|---:|")
    for name in occ_sum:
        ratio = render_sum[name] / occ_sum[name] if occ_sum[name] > 0 else float("nan")
        print(f"| {name} | {occ_sum[name]:.3g} | {render_sum[name]:.3g} | {ratio:.3g} |")
    print(f"cosine between the two over the whole network, per window: {', '.join(f'{c:.3f}' for c in cosines)}")


if __name__ == "__main__":
    main()
