"""How much of the occupancy loss's gradient reaches each part of the fuser (and the head, for scale).

For a few training windows of a dataset, runs the training objective (renderer off) forward and backward
and prints, per module group, the gradient norm relative to the weight norm, ||dL/dW|| / ||W||, averaged
over the windows, and the selectors' ratio over the attention's. With --checkpoint the weights are those
of a trained run (its config), otherwise the initial weights of --seed.

    python -m benchmarks.studies.fuser_gradients --config demo --data data/synth10_objects
    python -m benchmarks.studies.fuser_gradients --checkpoint checkpoints/demo.pt \
        --data data/synth10_objects --step 1000
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from benchmarks.studies import gradient_windows
from tacocc_core.train.objective import TrainingObjective
from tacocc_core.train.train_config import TrainConfig

GROUPS = {
    "selectors": "encoder.fuser.selectors.",
    "attention": "encoder.fuser.attention.",
    "fuser output conv": "encoder.fuser.out.",
    "head": "head.",
}


def group_ratios(net: torch.nn.Module) -> dict[str, float]:
    """{group: ||grad|| / ||weight||} over the parameters of each group (NaN when a group is absent)."""
    out = {}
    for name, prefix in GROUPS.items():
        params = [p for n, p in net.named_parameters() if n.startswith(prefix)]
        if not params:
            out[name] = float("nan")
            continue
        g = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in params if p.grad is not None) + 0.0)
        w = torch.sqrt(sum((p.detach().float() ** 2).sum() for p in params))
        out[name] = float(g / w.clamp(min=1e-12))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gradient_windows.add_arguments(parser, windows=4)
    args = parser.parse_args()

    state, config = gradient_windows.weights(args)
    objective = TrainingObjective(config, dataclasses.replace(TrainConfig(), renderer=False))
    if state is not None:
        objective.net.load_state_dict(state)
    objective.train()
    sums: dict[str, float] = {}
    for batch in gradient_windows.training_windows(args, config):
        objective.zero_grad(set_to_none=True)
        objective(batch, args.step).total.backward()
        for name, value in group_ratios(objective.net).items():
            sums[name] = sums.get(name, 0.0) + value / args.windows
    print(f"{gradient_windows.source(args)}, step {args.step}, {args.windows} windows of {args.data} ({args.split})")
    print("| module group | grad norm / weight norm |")
    print("|---|---:|")
    for name, value in sums.items():
        print(f"| {name} | {value:.3g} |")
    ratio = sums["selectors"] / sums["attention"] if sums.get("attention") else float("nan")
    print(f"selectors / attention: {ratio:.3g}")


if __name__ == "__main__":
    main()
