"""The renderer's place in the training loss: one optional term, computed by `tacocc_core.render`.

`renderer_loss(renderer, seq_output, batch, frames)` runs the sequential renderer step (paper Eq. 5) on the
chosen (b, t) frames of a window and returns the mean L_pc (into the head and F~_IL), the mean L_rgb of the
optimised Gaussians (into the velocity gate's beta only), numbers for the logs and, when asked, one
frame's rendered and real views for TensorBoard. The training objective weights L_pc (pc_lambda on
labelled frames, the label-efficient photometric weight on unlabelled ones); the loop never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tacocc_core.model.tacocc import SequenceOutput
from tacocc_core.render.sequential_renderer import SequentialRenderer, render_window
from tacocc_core.render.targets import window_targets


@dataclass
class RendererTerm:
    """Renderer losses of some frames of a window.

    Args:
        l_pc: mean L_pc of the rendered frames (a connected 0 when none was rendered).
        l_rgb: mean L_rgb of the rendered frames (gradient into beta only).
        logs: rendered / skipped frame counts, Gaussians per frame, first and last inner-loop L_rgb.
        views: (H, W_total, 3) uint8 rendered (top) over real (bottom) views of the first frame, when asked.
    """

    l_pc: torch.Tensor
    l_rgb: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)
    views: np.ndarray | None = None


def renderer_loss(
    renderer: SequentialRenderer,
    seq: SequenceOutput,
    batch: dict[str, torch.Tensor],
    frames: list[tuple[int, int]],
    generator: torch.Generator | None = None,
    with_views: bool = False,
) -> RendererTerm:
    """Renderer step on `frames` ((b, t) pairs) of the window whose network outputs are `seq`.

    Args:
        renderer: the Gaussian renderer (parameter net + velocity gate).
        seq: `TACOcc.forward_sequence` output; its F~_IL (B, T, C_h, X, Y, Z) is rendered.
        batch: the window's batch (`tacocc_core.batch` layout), on the renderer's device.
        frames: which frames to render (may be empty).
        generator: random source of the LiDAR anchor subsample.
        with_views: return the first rendered frame's views (`RendererTerm.views`).
    """
    features = seq.smoothed
    if not frames:
        zero = renderer.zero_loss(features)
        return RendererTerm(zero, zero.clone(), {"rendered": 0.0, "skipped": 0.0})
    sky = torch.stack([e.sky_masks for e in seq.encoder], dim=1)  # (B, T, V, H, W)
    coarse = torch.stack([h.coarse_logits for h in seq.heads], dim=1)  # (B, T, K, X, Y, Z)
    window = render_window(renderer, features, batch, frames, sky, generator, with_views, coarse_logits=coarse)
    done = [res for _, res in window.frames if res.skipped is None]
    skipped = len(window.frames) - len(done)
    views = None
    shown = next(
        ((bt, res.images) for bt, res in window.frames if res.skipped is None and res.images is not None), None
    )
    if with_views and shown is not None:
        (b, t), images = shown
        r = renderer.settings
        views = _views_image(images[0], window_targets(batch, b, t, r.neighbour_frames, r.render_scale, sky).images)
    if not done:
        return RendererTerm(window.l_pc, window.l_rgb, {"rendered": 0.0, "skipped": float(skipped)}, views)
    logs = {
        "rendered": float(len(done)),
        "skipped": float(skipped),
        "gaussians": float(np.mean([d.num_gaussians for d in done])),
        "rgb_first": float(np.mean([d.rgb_steps[0] for d in done])),
        "rgb_last": float(np.mean([d.rgb_steps[-1] for d in done])),
        "inner_steps": float(np.mean([d.inner_steps for d in done])),
        "converged": float(np.mean([d.converged for d in done])),
    }
    return RendererTerm(window.l_pc, window.l_rgb, logs, views)


def _views_image(rgb: torch.Tensor, real: torch.Tensor) -> np.ndarray:
    """Rendered (S*V, H, W, 3) in [0, 1] and real (S, V, H, W, 3) -> the frame's own V views, rendered over real."""
    v = real.shape[1]
    top = rgb[:v].detach().float().clamp(0, 1).cpu()
    bottom = real[0].detach().float().clamp(0, 1).cpu()
    rows = [torch.cat(list(x), dim=1) for x in (top, bottom)]  # (H, V*W, 3) each
    return (torch.cat(rows, dim=0).numpy() * 255).round().astype(np.uint8)
