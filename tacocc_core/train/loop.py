"""The training loop of `tacocc train`, top to bottom: data, model, optimiser, schedule, then the steps.

One process or many under torchrun (`distributed.py`): each rank reads batch_size sequences per step from
its share of one seeded permutation, DDP averages the gradients, rank 0 logs, validates into files and
writes checkpoints. Per step:

    forward_sequence on a (B, T) window -> the objective (L_occ on labelled frames, label-efficient and
    renderer terms) -> NaN guard -> backward -> gradient clipping -> AdamW step -> learning-rate step

then, on their intervals, TensorBoard scalars and images, validation (mIoU of the streamed network on the
held-out scenes, the best checkpoint kept) and the latest checkpoint. `resume=True` continues from
`latest.pt` exactly: weights, optimiser, scheduler, RNG, NaN counters and the position in the data order
(the order is a function of seed, epoch and step, so no loader state needs saving).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, CheckpointError, load_checkpoint
from tacocc_core.config import ModelConfig
from tacocc_core.data.dataset import AugmentOptions, SequenceDataset, make_collate
from tacocc_core.data.nuscenes_reader import LabelSource, NuScenesReader, ReaderOptions
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.predictor import Predictor, PredictorOptions
from tacocc_core.predictor_options import Precision
from tacocc_core.train.distributed import (
    DistContext,
    all_reduce_mean,
    barrier,
    convert_sync_batchnorm,
    gather_rng_states,
    init_distributed,
    make_sampler,
    shutdown,
    wrap_ddp,
)
from tacocc_core.train.evaluation import EvalResult, KHistogram, evaluate_streams, split_streams
from tacocc_core.train.k_log import KCounter, k_shares, k_side_by_side
from tacocc_core.train.labelled_dataset import LabelFractionDataset
from tacocc_core.train.nan_guard import NanGuard
from tacocc_core.train.objective import ObjectiveOutput, TrainingObjective
from tacocc_core.train.progress import ProgressLine, TensorBoardLogger, bev_image, side_by_side
from tacocc_core.train.pseudo_labels import teacher_pseudo_labels
from tacocc_core.train.run_state import CheckpointManager
from tacocc_core.train.schedule import make_optimizer, make_scheduler
from tacocc_core.train.train_config import TrainConfig, train_config_to_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """What to train, on what, and where.

    Args:
        config: the model config.
        train_config: schedule, logging, label-efficient options.
        data_root: a nuScenes-layout dataset folder.
        run_dir: checkpoints (`latest.pt`, `best.pt`), TensorBoard events (`tb/`), `train_config.json`.
        version: nuScenes table version (folder name under data_root).
        resume: continue from `run_dir/latest.pt`; without it an existing `latest.pt` is an error.
        train_split, val_split: split names (`splits.json` or the official nuScenes lists).
        labels: label source of the reader ("surroundocc", "occ3d", "none").
        device: "auto", "cpu" or "cuda" (the rank's GPU under torchrun).
        stop_at_step: end this invocation after this step (the schedule still spans train_config.steps);
            for time-boxed jobs that resume later.
        val_max_frames: score at most this many validation frames per rank (None: all).
    """

    config: ModelConfig
    train_config: TrainConfig
    data_root: Path
    run_dir: Path
    version: str = "v1.0-mini"
    resume: bool = False
    train_split: str = "train"
    val_split: str = "val"
    labels: LabelSource = "surroundocc"
    device: str = "auto"
    stop_at_step: int | None = None
    val_max_frames: int | None = None


@dataclass
class TrainSummary:
    """How the run ended: steps done, skipped steps, last losses and validation scores (rank 0)."""

    step: int
    skipped_nonfinite: int = 0
    skipped_unlearnable: int = 0
    last_terms: dict[str, float] = field(default_factory=dict)
    validations: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    seconds: float = 0.0


def train(spec: RunSpec) -> TrainSummary:
    """Run (or continue) a training run; see the module docstring."""
    tc = spec.train_config
    ctx = init_distributed(cpu=spec.device == "cpu")
    try:
        return _train(spec, tc, ctx)
    finally:
        shutdown(ctx)


def _train(spec: RunSpec, tc: TrainConfig, ctx: DistContext) -> TrainSummary:
    start_time = time.perf_counter()
    if spec.device == "cuda" and ctx.device.type != "cuda":
        raise ValueError("--device cuda requested but CUDA is not available")
    device = ctx.device
    _seed_everything(tc.seed + ctx.rank)

    # --- data -------------------------------------------------------------------------------------
    reader = NuScenesReader.open(spec.data_root, spec.version, spec.config, ReaderOptions(labels=spec.labels))
    sequences = SequenceDataset(reader, spec.train_split, augment=AugmentOptions(seed=tc.seed))
    train_set = LabelFractionDataset(sequences, tc.label_efficient, tc.seed)
    sampler = make_sampler(train_set, ctx, shuffle=True, seed=tc.seed, drop_last=True)
    steps_per_epoch = len(sampler) // tc.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"{spec.data_root} split {spec.train_split!r}: {len(train_set)} sequences of "
            f"{sequences.length} frames, fewer than batch_size {tc.batch_size} x {ctx.world_size} processes"
        )
    val_streams = split_streams(reader, spec.val_split)

    # --- model, optimiser, schedule -----------------------------------------------------------------
    objective = TrainingObjective(spec.config, tc)
    objective = convert_sync_batchnorm(objective, ctx).to(device)
    model = wrap_ddp(objective, ctx)  # every parameter takes part in every loss: no unused-parameter search
    optimizer = make_optimizer(objective, tc.lr, tc.weight_decay)
    scheduler = make_scheduler(optimizer, tc.warmup_steps, tc.steps, tc.min_lr_ratio)
    guard = NanGuard(tc.max_nan_in_a_row)
    teacher = load_teacher(tc, spec.config, device)

    # --- run state ----------------------------------------------------------------------------------
    ckpt = CheckpointManager(spec.run_dir, spec.config, train_config_to_dict(tc))
    step, unlearnable = 0, 0
    if spec.resume:
        state = ckpt.resume(objective.net, optimizer, scheduler, rank=ctx.rank)
        _restore_extra(objective, guard, state.extra, ckpt.latest_path)
        step, unlearnable = state.step, int(state.extra.get("skipped_unlearnable", 0))
    elif ckpt.latest_path.exists():
        raise CheckpointError(f"{ckpt.latest_path} exists: pass --resume to continue that run, or choose another --out")
    summary = TrainSummary(step=step, best_metric=ckpt.best_metric)
    if step >= tc.steps:
        return summary
    if ctx.is_main:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
    progress = ProgressLine(tc.steps, step, enabled=ctx.is_main)
    tb = TensorBoardLogger(spec.run_dir / "tb", enabled=ctx.is_main)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if tc.bf16 and device.type == "cuda" else contextlib.nullcontext()
    )
    end = min(tc.steps, spec.stop_at_step) if spec.stop_at_step is not None else tc.steps

    # --- steps --------------------------------------------------------------------------------------
    batches = _batches(train_set, sampler, tc, step, steps_per_epoch, spec.config)
    k_train = KCounter()
    model.train()
    try:
        while step < end:
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            want_images = ctx.is_main and (step + 1) % tc.image_every == 0
            teacher_labels = teacher_labels_of(teacher, batch, tc) if teacher is not None else None
            # The fuser's Gumbel noise: its own generators, a function of (seed, step, frame), so that a
            # resumed run draws what the uninterrupted one drew and every process what one process would.
            objective.net.encoder.fuser.seed_noise(tc.seed * 1_000_003 + step)
            with autocast:
                out = model(batch, step, teacher_labels, want_images)
            terms, stepped = backward_and_step(out, objective, optimizer, scheduler, guard, tc, ctx, step)
            if stepped is None:
                unlearnable += 1
            if out.seq is not None:
                k_train.add(e.k_stats for e in out.seq.encoder)
            step += 1
            summary.last_terms = terms
            progress.update(terms, tc.batch_size * ctx.world_size)
            if step % tc.log_every == 0 or step == end:
                tb.scalars(step, {**terms, "lr": float(scheduler.get_last_lr()[0])}, prefix="train")
                tb.scalars(step, {"nonfinite": guard.skipped, "unlearnable": unlearnable}, prefix="skipped")
            if want_images:
                _log_images(tb, step, out, batch)
            metric = None
            if step % tc.val_every == 0 or step == tc.steps:
                scores, k_val = _validate(objective.net, spec, reader, val_streams, ctx)
                metric = scores["miou"]
                summary.validations.append({"step": step, **scores})
                tb.scalars(step, scores, prefix="val")
                k_seen = k_train.take()
                tb.scalars(step, k_shares(k_seen), prefix="k_train")
                tb.scalars(step, k_shares(k_val), prefix="k_val")
                progress.write(f"step {step}: val mIoU {100 * scores['miou']:.2f} IoU {100 * scores['iou']:.2f}")
                if k_seen or k_val:
                    progress.write(
                        f"step {step}: chosen k since the last validation | on the validation frames\n"
                        + k_side_by_side(k_seen, k_val)
                    )
                model.train()
            keep = tc.keep_every > 0 and step % tc.keep_every == 0
            if metric is not None or keep or step % tc.ckpt_every == 0 or step == end:
                _save(ckpt, step, objective, optimizer, scheduler, guard, unlearnable, metric, ctx, keep)
    finally:
        progress.close()
        tb.close()
    summary.step = step
    summary.skipped_nonfinite = guard.skipped
    summary.skipped_unlearnable = unlearnable
    summary.best_metric = ckpt.best_metric
    summary.seconds = time.perf_counter() - start_time
    return summary


def backward_and_step(
    out: ObjectiveOutput,
    objective: TrainingObjective,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    guard: NanGuard,
    tc: TrainConfig,
    ctx: DistContext,
    step: int,
) -> tuple[dict[str, float], bool | None]:
    """Backward, clip, step. Returns the logged terms and True (stepped), False (non-finite) or None (nothing to learn).

    Every rank takes the same decision (the loss is averaged over ranks first), so that DDP's collective
    calls stay matched; a skipped step still runs backward of 0 x loss under DDP for the same reason.
    """
    # Host-device synchronisation: the loss values are read on the host for the guard and the logs.
    total = all_reduce_mean(out.total.float(), ctx)
    learnable = all_reduce_mean(torch.tensor(float(out.learnable), device=total.device), ctx)
    terms = {name: float(all_reduce_mean(v.float(), ctx)) for name, v in sorted(out.terms.items())}
    terms = {"loss": float(total), **terms}
    optimizer.zero_grad(set_to_none=True)
    if float(learnable) == 0.0:
        if ctx.distributed:
            (out.total * 0.0).backward()
        optimizer.zero_grad(set_to_none=True)
        return terms, None
    if not guard.check(total, step):
        if ctx.distributed:
            (out.total * 0.0).backward()
        optimizer.zero_grad(set_to_none=True)
        return terms, False
    out.total.backward()
    if tc.grad_clip_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(objective.parameters(), tc.grad_clip_norm)
        terms["grad_norm"] = float(norm)  # host sync
        if not guard.check(norm, step, what="gradient norm"):
            optimizer.zero_grad(set_to_none=True)
            return terms, False
    optimizer.step()
    scheduler.step()
    return terms, True


def _batches(
    dataset: LabelFractionDataset,
    sampler: torch.utils.data.DistributedSampler,
    tc: TrainConfig,
    start_step: int,
    steps_per_epoch: int,
    config: ModelConfig,
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches from step `start_step` on: epoch e is the sampler's permutation for e, cut into batches.

    The loader gets its own seeded generator, so creating it (at an epoch start or on resume) does not
    draw from the global RNG whose state the checkpoints carry.
    """
    epoch, offset = divmod(start_step, steps_per_epoch)
    collate = make_collate(config)
    while True:
        sampler.set_epoch(epoch)
        dataset.epoch = epoch
        order = list(sampler)
        chunks = [order[i : i + tc.batch_size] for i in range(0, steps_per_epoch * tc.batch_size, tc.batch_size)]
        loader = DataLoader(
            dataset,
            batch_sampler=chunks[offset:],
            collate_fn=collate,
            num_workers=tc.num_workers,
            generator=torch.Generator().manual_seed(tc.seed * 100_003 + epoch),
        )
        yield from loader
        epoch, offset = epoch + 1, 0


def _validate(
    net: TACOcc, spec: RunSpec, reader: NuScenesReader, streams: list[list[str]], ctx: DistContext
) -> tuple[dict[str, float], KHistogram]:
    """Geometry IoU and mIoU of the held-out scenes (every rank's share), and the chosen-k histogram there.

    The weights are the current ones, streamed frame after frame as in deployment.
    """
    precision: Precision = "bf16" if spec.train_config.bf16 and ctx.device.type == "cuda" else "fp32"
    options = PredictorOptions(device=str(ctx.device), precision=precision, timings=False)
    with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
        # Building a network draws initial weights from the global RNG, whose state checkpoints carry.
        predictor = Predictor(spec.config, net.state_dict(), options)
    result: EvalResult = evaluate_streams(predictor, reader, streams, ctx, max_frames=spec.val_max_frames)
    scores = result.evaluator.results()["all"]
    return {"miou": scores.miou, "iou": scores.geometry_iou, "frames": float(result.frames)}, result.k_histogram


def _save(
    ckpt: CheckpointManager,
    step: int,
    objective: TrainingObjective,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    guard: NanGuard,
    unlearnable: int,
    metric: float | None,
    ctx: DistContext,
    keep: bool = False,
) -> None:
    """Rank 0 writes the checkpoints (`CheckpointManager.save`); every rank's RNG goes in."""
    rng = gather_rng_states(ctx)
    if ctx.is_main:
        extra: dict[str, Any] = {"nan_guard": guard.state_dict(), "skipped_unlearnable": unlearnable}
        if objective.renderer is not None:
            extra["renderer"] = objective.renderer.state_dict()
        ckpt.save(step, objective.net, optimizer, scheduler, metric=metric, extra=extra, rng_states=rng, keep=keep)
    barrier(ctx)


def _restore_extra(objective: TrainingObjective, guard: NanGuard, extra: dict[str, Any], path: Path) -> None:
    if "nan_guard" in extra:
        guard.load_state_dict(extra["nan_guard"])
    if objective.renderer is not None:
        if "renderer" not in extra:
            raise CheckpointError(f"{path}: no renderer weights, but this run trains with the renderer")
        try:
            objective.renderer.load_state_dict(extra["renderer"])
        except RuntimeError as err:
            raise CheckpointError(f"{path}: renderer weights do not fit: {err}") from None


def load_teacher(tc: TrainConfig, config: ModelConfig, device: torch.device) -> TACOcc | None:
    """The frozen teacher network of label-efficient training, or None when teacher labels are off."""
    le = tc.label_efficient
    if le.teacher_weight == 0 or le.teacher_checkpoint is None:
        return None
    payload = load_checkpoint(le.teacher_checkpoint, expected=config, ignore=INFERENCE_IRRELEVANT)
    teacher = TACOcc(config)
    teacher.load_state_dict(payload["model"])
    teacher.to(device).eval().requires_grad_(False)
    return teacher


@torch.no_grad()
def teacher_labels_of(teacher: TACOcc, batch: dict[str, torch.Tensor], tc: TrainConfig) -> torch.Tensor:
    """(B, T, X, Y, Z) uint8: the teacher's confident labels of every frame of the window (255 elsewhere)."""
    seq = teacher.forward_sequence(batch)
    threshold = tc.label_efficient.teacher_threshold
    return torch.stack([teacher_pseudo_labels(h.fine_logits, threshold) for h in seq.heads], dim=1)


def _log_images(tb: TensorBoardLogger, step: int, out: ObjectiveOutput, batch: dict[str, torch.Tensor]) -> None:
    """BEV of prediction vs ground truth of the window's last frame; rendered vs real views when rendered."""
    if out.seq is not None:
        t = len(out.seq.heads) - 1
        pred = out.seq.heads[t].fine_logits[0].detach().argmax(0).to(torch.uint8)
        tb.image(step, "bev/prediction_vs_truth", side_by_side(bev_image(pred), bev_image(batch["labels"][0, t])))
    if out.views is not None:
        tb.image(step, "render/rendered_over_real", out.views)
    tb.flush()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def with_label_fraction(tc: TrainConfig, fraction: float) -> TrainConfig:
    """`tc` with label_efficient.label_fraction replaced (the `--label-fraction` option)."""
    le = dataclasses.replace(tc.label_efficient, label_fraction=fraction)
    return dataclasses.replace(tc, label_efficient=le)
