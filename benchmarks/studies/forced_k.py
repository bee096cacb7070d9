"""Does k matter? A trained checkpoint evaluated with k forced for every query, and with retrieval off.

Streams the held-out scenes (as `tacocc eval`) once with the selector's k, then with k forced to each of
--ks for every query, then with retrieval off (the weight and context 0, the same weights), and prints per
variant: the relative change of the fused volume F_IL against the selector's run
(||F - F_selector|| / ||F_selector|| over all frames), the share of grid voxels whose predicted class
changed, IoU and mIoU. The fixed k is this harness's: the checkpoint's fuser is swapped for a fuser of
mode "fixed" (k) or "none" (retrieval off) that holds the same weights (`fixed_k_fuser`).

    python -m benchmarks.studies.forced_k --checkpoint checkpoints/demo.pt --data data/synth10_objects
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator

import numpy as np
import torch

from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.metrics import OccupancyEvaluator
from tacocc_core.model.fuser import AdaptiveFuser
from tacocc_core.predictor import Predictor, PredictorOptions
from tacocc_core.train.evaluation import split_streams


def fixed_k_fuser(trained: AdaptiveFuser, config, k: int) -> AdaptiveFuser:
    """A fuser with the weights of `trained` that retrieves k keys for every query (k = 0: no retrieval)."""
    fc = dataclasses.replace(config.fuser, mode="fixed" if k else "none", fixed_k=max(k, 1))
    fixed = AdaptiveFuser(dataclasses.replace(config, fuser=fc))
    missing, _ = fixed.load_state_dict(trained.state_dict(), strict=False)  # the selectors are left out
    if missing:
        raise SystemExit(f"forced_k: the trained fuser lacks {missing[:3]}")
    return fixed.to(next(trained.parameters()).device).eval()


@contextlib.contextmanager
def fuser_swapped(predictor: Predictor, k: int | None) -> Iterator[AdaptiveFuser]:
    """Inside the block the predictor's network runs a fixed-k copy of its fuser (None: its own fuser)."""
    encoder = predictor.model.encoder
    trained = encoder.fuser
    if k is not None:
        encoder.fuser = fixed_k_fuser(trained, predictor.config, k)
    try:
        yield encoder.fuser
    finally:
        encoder.fuser = trained


def run_variant(predictor: Predictor, frames: list[list], k: int | None) -> tuple[list, list, OccupancyEvaluator]:
    """Fused volumes and predicted grids of every frame, and the scores, with k forced to `k`."""
    fused: list[torch.Tensor] = []
    evaluator = OccupancyEvaluator(predictor.grid)
    labels = []
    with fuser_swapped(predictor, k) as fuser:
        hook = fuser.register_forward_hook(lambda module, inputs, output: fused.append(output[0].detach().clone()))
        try:
            for scene in frames:
                predictor.reset()
                for frame in scene:
                    prediction = predictor.predict(frame)
                    if prediction.error is not None:
                        raise RuntimeError(prediction.error)
                    labels.append(prediction.labels)
                    if frame.labels is not None:
                        evaluator.update(prediction.labels, frame.labels)
        finally:
            hook.remove()
    return fused, labels, evaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--version", default="v1.0-mini")
    parser.add_argument("--split", default="val")
    parser.add_argument("--ks", default="1,2,3", help="forced k values")
    args = parser.parse_args()

    # Unfolded: the hooks and the forced k act on `predictor.model`, which a folded Predictor does not run.
    options = PredictorOptions(device="cpu", timings=False, fold=False)
    predictor = Predictor.from_checkpoint(args.checkpoint, options=options)
    reader = NuScenesReader.open(args.data, args.version, predictor.config)
    frames = [[reader.frame(token) for token in scene] for scene in split_streams(reader, args.split)]
    base_fused, base_labels, base_eval = run_variant(predictor, frames, None)
    if not base_fused:
        raise SystemExit("forced_k: the fuser never ran (its hook saw no output)")
    base_norm = float(torch.sqrt(sum((f.double() ** 2).sum() for f in base_fused)))
    print(f"{args.checkpoint} on {args.data} ({args.split}, {len(base_labels)} frames)")
    print("| k | fused volume changed (relative L2, %) | predicted voxels changed (%) | IoU | mIoU |")
    print("|---|---:|---:|---:|---:|")
    variants = [("selector", None), *[(f"forced k={k}", int(k)) for k in args.ks.split(",")], ("retrieval off", 0)]
    for name, k in variants:
        if k is None:
            fused, labels, evaluator = base_fused, base_labels, base_eval
        else:
            fused, labels, evaluator = run_variant(predictor, frames, k)
        diff = float(
            torch.sqrt(sum(((a.double() - b.double()) ** 2).sum() for a, b in zip(fused, base_fused, strict=True)))
        )
        changed = np.mean([np.mean(a != b) for a, b in zip(labels, base_labels, strict=True)])
        s = evaluator.results()["all"]
        print(
            f"| {name} | {100 * diff / base_norm:.2f} | {100 * changed:.2f} | "
            f"{100 * s.geometry_iou:.2f} | {100 * s.miou:.2f} |"
        )


if __name__ == "__main__":
    main()
