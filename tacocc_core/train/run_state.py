"""Everything `--resume` needs, in checkpoints written atomically: weights, optimiser, scheduler, step, RNG.

Two files per run directory: `latest.pt` (written every `ckpt_every` steps and after each validation) and
`best.pt` (the latest checkpoint whose validation metric beat every earlier one); with `keep=True` a save also
leaves `step_NNNNNN.pt` behind (`kept_path`), a snapshot that later saves do not overwrite. Both go through
`tacocc_core.checkpoint.save_checkpoint` (temp file + fsync + rename), so a crash or a full disk while
writing leaves the previous file as it was. Every entry is plain data (tensors, numbers, strings, lists,
dicts) so that `torch.load(weights_only=True)` reads it back.

Resuming checks the whole file against the live objects before changing any of them: a corrupt file, a
model config that differs, or weights/optimiser groups that do not fit raise `CheckpointError` and leave
the model, the optimiser and the files untouched.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tacocc_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tacocc_core.config import ModelConfig

LATEST = "latest.pt"
BEST = "best.pt"


def capture_rng_state() -> dict[str, Any]:
    """The state of Python's `random`, numpy's global generator, torch's CPU generator and every CUDA one."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`. CUDA states are restored only when saved and CUDA is present."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npy["bit_generator"],
            "state": {"key": npy["key"].numpy().astype(np.uint32), "pos": int(npy["pos"])},
            "has_gauss": int(npy["has_gauss"]),
            "gauss": float(npy["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        saved = state["cuda"]
        if len(saved) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel) else model


@dataclass
class ResumeState:
    """What `CheckpointManager.resume` hands back besides the restored objects.

    Args:
        step: optimiser steps completed when the checkpoint was written (continue with this step).
        best_metric: the best validation metric so far (None if never validated).
        extra: the `extra` dict given to `save` (NaN-guard counters, sampler epoch, ...).
    """

    step: int
    best_metric: float | None
    extra: dict[str, Any] = field(default_factory=dict)


class CheckpointManager:
    """The "latest" + "best" checkpoints of one run directory.

    Args:
        run_dir: folder of the run (created on the first save).
        config: the model config, stored in every file and required to match on resume.
        train_config: plain dict of the training config, stored for reference (not checked on resume:
            a run may continue with e.g. more steps).
        higher_is_better: direction of the validation metric (mIoU: True).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: ModelConfig,
        train_config: dict[str, Any] | None = None,
        higher_is_better: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.train_config = train_config or {}
        self.higher_is_better = higher_is_better
        self.best_metric: float | None = None

    @property
    def latest_path(self) -> Path:
        return self.run_dir / LATEST

    @property
    def best_path(self) -> Path:
        return self.run_dir / BEST

    def kept_path(self, step: int) -> Path:
        """The snapshot of `step` that `save(..., keep=True)` leaves beside `latest.pt`."""
        return self.run_dir / f"step_{step:06d}.pt"

    def is_better(self, metric: float) -> bool:
        if not np.isfinite(metric):
            return False
        if self.best_metric is None:
            return True
        return metric > self.best_metric if self.higher_is_better else metric < self.best_metric

    def save(
        self,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        metric: float | None = None,
        extra: dict[str, Any] | None = None,
        rng_states: list[dict[str, Any]] | None = None,
        keep: bool = False,
    ) -> bool:
        """Write `latest.pt`; when `metric` beats the best so far, `best.pt` becomes a copy of it.

        Args:
            step: optimiser steps completed.
            metric: the validation metric at this step, or None when no validation ran.
            extra: more plain data to restore on resume.
            rng_states: one `capture_rng_state()` per rank (rank order); default: this process only.
            keep: also leave a copy as `kept_path(step)`.

        Returns:
            True when this checkpoint became the best one.

        Raises:
            OSError: the file could not be written (disk full, ...); the previous files are intact.
        """
        better = metric is not None and self.is_better(metric)
        best = metric if better else self.best_metric
        payload = {
            "step": int(step),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_states if rng_states is not None else [capture_rng_state()],
            "best_metric": best,
            "metric": metric,
            "train_config": self.train_config,
            "extra": extra or {},
        }
        try:
            save_checkpoint(self.latest_path, unwrap(model).state_dict(), self.config, **payload)
            if better:
                _copy_atomically(self.latest_path, self.best_path)
            if keep:
                _copy_atomically(self.latest_path, self.kept_path(step))
        except OSError as err:
            raise OSError(
                err.errno,
                f"{self.run_dir}: could not write the checkpoint of step {step} ({err.strerror or err}); "
                "the previous checkpoint files are intact",
            ) from err
        self.best_metric = best
        return better

    def resume(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        path: str | os.PathLike[str] | None = None,
        rank: int = 0,
    ) -> ResumeState:
        """Restore weights, optimiser, scheduler, best metric and this rank's RNG from `latest.pt` (or `path`).

        Everything is checked before anything is changed. A rank with no saved RNG state (a run resumed
        on more processes than it was saved from) keeps its own seeding.

        Raises:
            CheckpointError: missing, corrupt or foreign file; model config differs; weights or
                optimiser groups do not fit the live model (names the keys).
        """
        path = Path(path) if path is not None else self.latest_path
        payload = load_checkpoint(path, expected=self.config, ignore=("name",))
        for key in ("step", "optimizer", "scheduler", "rng"):
            if key not in payload:
                raise CheckpointError(f"{path}: not a resumable checkpoint (no '{key}' entry); pass it as weights")
        target = unwrap(model)
        _check_state_dict_fits(path, payload["model"], target.state_dict())
        _check_optimizer_fits(path, payload["optimizer"], optimizer)
        target.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        if rank < len(payload["rng"]):
            restore_rng_state(payload["rng"][rank])
        self.best_metric = payload.get("best_metric")
        return ResumeState(int(payload["step"]), self.best_metric, dict(payload.get("extra") or {}))


def _check_state_dict_fits(path: Path, saved: dict[str, torch.Tensor], live: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(live) - set(saved))
    unexpected = sorted(set(saved) - set(live))
    shapes = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(live[k].shape)}"
        for k in sorted(set(saved) & set(live))
        if tuple(saved[k].shape) != tuple(live[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing weights: {', '.join(missing[:10])}")
    if unexpected:
        problems.append(f"unexpected weights: {', '.join(unexpected[:10])}")
    if shapes:
        problems.append(f"shape mismatch (checkpoint vs model): {'; '.join(shapes[:10])}")
    if problems:
        raise CheckpointError(f"{path}: weights do not fit the model: " + " | ".join(problems))


def _check_optimizer_fits(path: Path, saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list):
        raise CheckpointError(f"{path}: optimizer entry has no param_groups")
    live = [len(g["params"]) for g in optimizer.param_groups]
    stored = [len(g["params"]) for g in groups]
    if live != stored:
        raise CheckpointError(
            f"{path}: optimizer parameter groups differ (checkpoint sizes {stored}, live optimizer {live})"
        )


def _copy_atomically(src: Path, dst: Path) -> None:
    """Make `dst` a copy of `src` through a temp name: a hard link where the filesystem allows, else a copy."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)  # same inode: free, and later rewrites of `src` (a new inode) leave it alone
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
