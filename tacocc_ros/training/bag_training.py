"""Fine-tuning on rosbag2 bags with the training engine: the work of `training_node`, without the node.

Frames come from `bag_frames` (the occupancy node's assembly), grouped per bag into T-frame sequences;
each step takes `batch_size` sequences of a seeded permutation and runs the engine's own pieces:
`TrainingObjective` (L_occ on labelled frames, the label-efficient terms of the TrainConfig on the
others), `make_optimizer` / `make_scheduler`, the loop's `backward_and_step` (NaN guard, clipping) and
`CheckpointManager` (atomic `latest.pt`, resumable: weights, optimiser, scheduler, RNG, step). A
checkpoint written here is an ordinary checkpoint: the occupancy node's `reload` / `checkpoint`
parameter takes it while running.

Modes: "supervised" needs the labels topic (`/occupancy/gt`) in every bag (BagError naming the bag otherwise);
"self_supervised" drops all labels and needs a label-efficient weight (geometry, photometric or teacher) > 0;
"auto" uses labels where a bag has them.

The network sees the training step of its own history, not the fine-tune's: starting from a checkpoint
written at step N, fine-tuning step s runs the model at step N + s. The adaptive fuser's Gumbel noise and
temperature are a function of that step (they reach inference's rule, noise 0 and the final tau, after
`fuser.tau_anneal_steps`); counting from 0 again would put a trained selector back under full noise at
tau 1 for the whole of a short fine-tune. Random initial weights start at model step 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tacocc_core.bags.reading import BagError, BagReader
from tacocc_core.bags.topics import SensorTopics
from tacocc_core.checkpoint import INFERENCE_IRRELEVANT, CheckpointError, load_checkpoint
from tacocc_core.config import ModelConfig
from tacocc_core.data.dataset import make_collate
from tacocc_core.frame import Frame
from tacocc_core.train.distributed import DistContext
from tacocc_core.train.label_fraction import apply_label_fraction, select_labelled_frames
from tacocc_core.train.loop import backward_and_step, load_teacher, teacher_labels_of, with_label_fraction
from tacocc_core.train.nan_guard import NanGuard
from tacocc_core.train.objective import TrainingObjective
from tacocc_core.train.run_state import CheckpointManager
from tacocc_core.train.schedule import make_optimizer, make_scheduler
from tacocc_core.train.train_config import TrainConfig, train_config_to_dict
from tacocc_ros.bags.bag_frames import bag_frames, sequences
from tacocc_ros.node.sync import SyncConfig

Mode = Literal["auto", "supervised", "self_supervised"]


@dataclass(frozen=True)
class FineTuneSpec:
    """One fine-tuning run.

    Args:
        bags: rosbag2 bags (folders, .mcap or .db3 files).
        config: the model config (its network must match the initial checkpoint; loss and renderer may differ).
        train_config: steps, lr, schedule, label-efficient weights, ckpt_every.
        out_dir: run folder (`latest.pt` goes here).
        initial_checkpoint: weights to start from ("" = random weights); ignored on resume.
        resume: continue from `out_dir/latest.pt`.
        mode: "auto", "supervised" or "self_supervised" (module docstring).
        label_fraction: keep this fraction of the labels (train_config.label_efficient.label_mode).
        device: "cpu", "cuda" or "cuda:N".
        topics: the bags' topic names (the occupancy node's parameters); default the converter's names.
        calibration: calibration file for every bag; "" = each bag's calibration.yaml, else its
            /tf_static + camera_info (`bag_frames`).
        sync: image-to-sweep matching; None = the node's defaults.
    """

    bags: tuple[str, ...]
    config: ModelConfig
    train_config: TrainConfig
    out_dir: str
    initial_checkpoint: str = ""
    resume: bool = False
    mode: Mode = "auto"
    label_fraction: float = 1.0
    device: str = "cpu"
    topics: SensorTopics = SensorTopics()
    calibration: str = ""
    sync: SyncConfig | None = None


@dataclass(frozen=True)
class Progress:
    """One step: loss terms, step, frames per second over that step."""

    step: int
    total_steps: int
    terms: dict[str, float]
    frames_per_s: float
    checkpoint: str | None = None

    def as_dict(self) -> dict:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "loss": self.terms.get("loss"),
            "terms": self.terms,
            "frames_per_s": self.frames_per_s,
            "checkpoint": self.checkpoint,
        }


def load_sequences(spec: FineTuneSpec, log: Callable[[str], object] | None = None) -> list[list[Frame]]:
    """All T-frame sequences of the bags, labels attached per the mode and the label fraction.

    `log` receives where each bag's rig came from and the notes of `bag_frames`.
    """
    if spec.mode not in ("auto", "supervised", "self_supervised"):
        raise ValueError(f"mode must be auto, supervised or self_supervised, got {spec.mode!r}")
    if not spec.bags:
        raise ValueError("no bags given")
    le = spec.train_config.label_efficient
    if spec.mode == "self_supervised" and max(le.geometry_weight, le.photometric_weight, le.teacher_weight) <= 0:
        raise ValueError(
            "self_supervised mode needs label_efficient.geometry_weight, photometric_weight or teacher_weight > 0 "
            "in the train config"
        )
    window = spec.config.temporal.window
    out: list[list[Frame]] = []
    for bag in spec.bags:
        if spec.mode == "supervised":
            labels_topic = spec.topics.labels
            with BagReader(bag) as reader:
                if reader.topics.get(labels_topic) is None or reader.topics[labels_topic].count == 0:
                    raise BagError(
                        f"{bag}: no {labels_topic} messages, but the mode is supervised; set labels_topic, "
                        "or mode self_supervised"
                    )
        frames = []
        for item in bag_frames(bag, spec.config, spec.sync, spec.topics, spec.calibration, log):
            labels = None if spec.mode == "self_supervised" else item.labels
            token = f"{Path(bag).name}:{item.frame.stamp_ns}"
            frames.append((item.frame, labels, token))
        tokens = [t for _, labels, t in frames if labels is not None]
        chosen = select_labelled_frames(tokens, spec.label_fraction, spec.train_config.seed)
        kept = [
            _with_labels(
                f,
                apply_label_fraction(labels, t, le.label_mode, spec.label_fraction, spec.train_config.seed, chosen),
                t,
            )
            for f, labels, t in frames
        ]
        seqs = sequences(kept, window)
        if not seqs:
            raise BagError(f"{bag}: {len(kept)} synchronised frames, fewer than the window of {window}")
        out += seqs
    if spec.mode != "self_supervised" and not any(f.labels is not None for s in out for f in s):
        if spec.mode == "supervised":
            raise BagError(f"{', '.join(spec.bags)}: no labelled frame left to train on in supervised mode")
    return out


def _with_labels(frame: Frame, labels: np.ndarray | None, token: str) -> Frame:
    return replace(frame, labels=labels, sample_token=token)


class FineTuner:
    """Holds the objective, optimiser, scheduler and checkpoints of one run; `run()` does the steps."""

    def __init__(self, spec: FineTuneSpec, log: Callable[[str], object] | None = None) -> None:
        self.spec = spec
        tc = with_label_fraction(spec.train_config, spec.label_fraction)
        self.train_config = tc
        self.device = torch.device(spec.device)
        self.sequences = load_sequences(spec, log)
        if len(self.sequences) < tc.batch_size:
            raise ValueError(f"{len(self.sequences)} sequences in the bags, fewer than batch_size {tc.batch_size}")
        torch.manual_seed(tc.seed)
        self.objective = TrainingObjective(spec.config, tc).to(self.device)
        self.optimizer = make_optimizer(self.objective, tc.lr, tc.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, tc.warmup_steps, tc.steps, tc.min_lr_ratio)
        self.guard = NanGuard(tc.max_nan_in_a_row)
        self.ckpt = CheckpointManager(spec.out_dir, spec.config, train_config_to_dict(tc))
        self.step = 0
        self.saved_step = 0  # the step of the last latest.pt this run wrote or resumed from
        self.model_step_offset = 0  # the initial checkpoint's training step (module docstring)
        if spec.resume and self.ckpt.latest_path.exists():
            state = self.ckpt.resume(self.objective.net, self.optimizer, self.scheduler)
            if "nan_guard" in state.extra:
                self.guard.load_state_dict(state.extra["nan_guard"])
            self.step = self.saved_step = state.step
            self.model_step_offset = int(state.extra.get("model_step_offset", 0))
        elif self.ckpt.latest_path.exists():
            raise CheckpointError(
                f"{self.ckpt.latest_path} exists: set resume to continue that run, or another out_dir"
            )
        elif spec.initial_checkpoint:
            # The network must match; the losses and the renderer are this run's own (a fine-tune may change them).
            payload = load_checkpoint(spec.initial_checkpoint, expected=spec.config, ignore=INFERENCE_IRRELEVANT)
            self.objective.net.load_state_dict(payload["model"])
            self.model_step_offset = int(payload.get("step") or 0)
        self.collate = make_collate(spec.config)
        # The frozen teacher of label_efficient.teacher_checkpoint (None when teacher_weight is 0).
        self.teacher = load_teacher(tc, spec.config, self.device)

    def _order(self, epoch: int) -> list[int]:
        rng = np.random.default_rng(self.train_config.seed * 100_003 + epoch)
        return rng.permutation(len(self.sequences)).tolist()

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of optimiser step `step`: a function of seed and step only, so a resumed run continues it."""
        bs = self.train_config.batch_size
        per_epoch = len(self.sequences) // bs
        epoch, index = divmod(step, per_epoch)
        chosen = self._order(epoch)[index * bs : (index + 1) * bs]
        batch = self.collate([self.sequences[i] for i in chosen])
        return {k: v.to(self.device) for k, v in batch.items()}

    def model_step(self, step: int) -> int:
        """The step the network runs at during fine-tuning step `step` (its fuser schedule): offset + step."""
        return self.model_step_offset + step

    def save(self) -> Path:
        """Write `out_dir/latest.pt` at the current step (atomically) and return its path."""
        extra = {
            "nan_guard": self.guard.state_dict(),
            "skipped_unlearnable": 0,
            "model_step_offset": self.model_step_offset,
        }
        if self.objective.renderer is not None:
            extra["renderer"] = self.objective.renderer.state_dict()
        self.ckpt.save(self.step, self.objective.net, self.optimizer, self.scheduler, extra=extra)
        self.saved_step = self.step
        return self.ckpt.latest_path

    def run(self, on_progress: Callable[[Progress], None] | None = None, should_stop: Callable[[], bool] | None = None):
        """Steps until train_config.steps (or `should_stop()`); a checkpoint every ckpt_every steps and at the end."""
        tc = self.train_config
        ctx = DistContext(rank=0, world_size=1, local_rank=0, device=self.device)
        self.objective.train()
        frames_per_step = tc.batch_size * self.spec.config.temporal.window
        while self.step < tc.steps and not (should_stop and should_stop()):
            start = time.perf_counter()
            batch = self.batch(self.step)
            teacher = teacher_labels_of(self.teacher, batch, tc) if self.teacher is not None else None
            out = self.objective(batch, self.model_step(self.step), teacher)
            terms, _ = backward_and_step(
                out, self.objective, self.optimizer, self.scheduler, self.guard, tc, ctx, self.step
            )
            self.step += 1
            saved = None
            if self.step % tc.ckpt_every == 0 or self.step == tc.steps:
                saved = str(self.save())
            if on_progress is not None:
                fps = frames_per_step / max(time.perf_counter() - start, 1e-9)
                on_progress(Progress(self.step, tc.steps, terms, fps, saved))
        return self.step


def bag_paths(values: Sequence[str]) -> tuple[str, ...]:
    """Bag folder paths as given, each checked to exist (BagError naming the first one that does not)."""
    for value in values:
        if not os.path.exists(value):
            raise BagError(f"{value}: no such bag")
    return tuple(values)
