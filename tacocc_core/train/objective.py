"""The training objective: network forward over a (B, T) window -> the weighted total loss and its terms.

    total = (1 - lambda) L_occ + lambda L_pc(labelled) + w_photo L_pc(unlabelled) + L_rgb     (paper Eq. 5)
            + w_geo L_geo + w_teacher L_teacher + w_depth L_depth

lambda = renderer.pc_lambda when the renderer is on, else 0 (total = L_occ + ...). Every term is a mean over
the frames it applies to, each frame weighing the same: L_occ over frames with labels (`has_labels`, after
the label fraction), L_geo over frames without labels (all frames with `geometry_on_labelled`), L_teacher
over every frame (the teacher labels only voxels without ground truth), L_pc over rendered frames. Per-frame
means make data-parallel training exact: the mean over ranks of each rank's mean is the mean over the
global batch when every rank holds the same number of frames of each kind.

`TrainingObjective` is the module the optimiser and DistributedDataParallel see: the network, the optional
renderer, and the loss. Its `forward` returns the total and the terms, so that DDP's gradient hooks see
the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tacocc_core.config import ModelConfig
from tacocc_core.labels import IGNORE
from tacocc_core.losses.occupancy import OccupancyLoss
from tacocc_core.model.occupancy_head import HeadOutput
from tacocc_core.model.tacocc import SequenceOutput, TACOcc
from tacocc_core.render.sequential_renderer import SequentialRenderer
from tacocc_core.train.geometry_targets import batch_geometry_targets
from tacocc_core.train.pseudo_labels import geometry_loss
from tacocc_core.train.renderer_term import renderer_loss
from tacocc_core.train.train_config import TrainConfig


@dataclass
class ObjectiveOutput:
    """One window's loss.

    Args:
        total: the scalar that is back-propagated (connected to every parameter, finite or not).
        terms: detached unweighted terms for logs (`occ`, `geo`, `teacher`, `pc`, `rgb`, `depth`).
        learnable: False when the window had nothing to learn from (no labelled frame and no
            self-supervised term): the loop skips such a step.
        seq: the network outputs (for images in the logs).
        views: rendered-over-real views of one frame, when asked for and the renderer ran.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    learnable: bool = True
    seq: SequenceOutput | None = None
    views: np.ndarray | None = None


def head_frame(head: HeadOutput, b: int) -> HeadOutput:
    """Sequence b of a head output, batch axis kept (size 1)."""
    return HeadOutput(head.coarse_logits[b : b + 1], head.fine_logits[b : b + 1], head.refined[b : b + 1])


class TrainingObjective(nn.Module):
    """TACOcc + optional Gaussian renderer + the loss of a TrainConfig.

    Args:
        config: the model config.
        train_config: the run (renderer switch, label-efficient weights).
        net: the network (default: a new TACOcc of `config`).
        renderer: the renderer (default: built from `config` when `config.renderer.enabled` and
            `train_config.renderer`; None otherwise).
    """

    def __init__(
        self,
        config: ModelConfig,
        train_config: TrainConfig,
        net: TACOcc | None = None,
        renderer: SequentialRenderer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.train_config = train_config
        self.net = net if net is not None else TACOcc(config)
        use_renderer = config.renderer.enabled and train_config.renderer
        if renderer is None and use_renderer:
            renderer = SequentialRenderer.from_config(config)
        self.renderer = renderer if use_renderer else None
        self.occupancy_loss = OccupancyLoss(config.loss, config.head.cascade_ratio)
        self.grid = config.grid.spec()

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        step: int,
        teacher_labels: torch.Tensor | None = None,
        with_views: bool = False,
    ) -> ObjectiveOutput:
        """The loss of one window.

        Args:
            batch: the `tacocc_core.batch` layout on the model's device; labels 255 where unknown.
            step: the optimiser step (Gumbel temperature of the fuser).
            teacher_labels: (B, T, X, Y, Z) uint8 confident teacher labels (255 elsewhere), or None.
            with_views: ask the renderer for one frame's rendered and real views.
        """
        le = self.train_config.label_efficient
        seq = self.net.forward_sequence(batch, step=step)
        bsz, steps = batch["stamps_ns"].shape
        has_labels = batch["has_labels"].cpu().numpy()  # host sync: which frames carry labels
        labels = batch["labels"]
        zero = _connected_zero(self)
        terms: dict[str, torch.Tensor] = {}
        weighted: list[torch.Tensor] = []
        pc_lambda = self.config.renderer.pc_lambda if self.renderer is not None else 0.0

        labelled = [(b, t) for b in range(bsz) for t in range(steps) if has_labels[b, t]]
        unlabelled = [(b, t) for b in range(bsz) for t in range(steps) if not has_labels[b, t]]
        if labelled:
            occ = torch.stack(
                [self.occupancy_loss(head_frame(seq.heads[t], b), labels[b, t][None]).total for b, t in labelled]
            ).mean()
            terms["occ"] = occ
            weighted.append((1.0 - pc_lambda) * occ)

        geo_frames = labelled + unlabelled if le.geometry_on_labelled else unlabelled
        if le.geometry_weight > 0 and geo_frames:
            target = batch_geometry_targets(
                batch, self.grid, le.pseudo_label_max_lag_s, le.free_skip_hit_level, le.free_clearance
            ).to(labels.device)
            geo = torch.stack(
                [geometry_loss(seq.heads[t].fine_logits[b : b + 1], target[b, t][None]) for b, t in geo_frames]
            ).mean()
            terms["geo"] = geo
            weighted.append(le.geometry_weight * geo)

        if teacher_labels is not None and le.teacher_weight > 0:
            pseudo = torch.where(labels == IGNORE, teacher_labels.to(labels.device), torch.full_like(labels, IGNORE))
            teacher = torch.stack(
                [
                    self.occupancy_loss(head_frame(seq.heads[t], b), pseudo[b, t][None]).total
                    for b in range(bsz)
                    for t in range(steps)
                ]
            ).mean()
            terms["teacher"] = teacher
            weighted.append(le.teacher_weight * teacher)

        views = None
        if self.renderer is not None:
            frames = labelled if pc_lambda > 0 else []
            if le.photometric_weight > 0:
                frames = frames + unlabelled
            if frames:
                term = renderer_loss(self.renderer, seq, batch, frames, with_views=with_views)
                views = term.views
                # L_pc per frame kind: labelled frames follow Eq. 5, unlabelled ones the photometric weight.
                n_lab = sum(1 for f in frames if has_labels[f])
                weight = (pc_lambda * n_lab + le.photometric_weight * (len(frames) - n_lab)) / len(frames)
                terms["pc"] = term.l_pc
                terms["rgb"] = term.l_rgb
                weighted.extend([weight * term.l_pc, term.l_rgb])

        depth_w = self.config.view_transform.depth_loss_weight
        if depth_w > 0:
            depth = torch.stack([e.depth_loss() for e in seq.encoder]).mean()
            terms["depth"] = depth
            weighted.append(depth_w * depth)

        learnable = bool(weighted)
        total = zero + (torch.stack(weighted).sum() if weighted else 0.0)
        return ObjectiveOutput(total, {k: v.detach() for k, v in terms.items()}, learnable, seq, views)


def _connected_zero(module: nn.Module) -> torch.Tensor:
    """0 attached to every trainable parameter: every gradient exists (zero) even when a term is absent."""
    total = None
    for p in module.parameters():
        if p.requires_grad:
            term = p.sum() * 0.0
            total = term if total is None else total + term
    if total is None:
        raise ValueError(f"{type(module).__name__} has no trainable parameters")
    return total
