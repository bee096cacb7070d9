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
from tacocc_core.render.sequential_renderer import SequentialRenderer
from tacocc_core.render.targets import frame_interval, frame_motion, frame_points, window_targets


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
    r = renderer.settings
    done, skipped, views = [], 0, None
    for b, t in frames:
        targets = window_targets(batch, b, t, r.neighbour_frames, r.render_scale, sky)
        want_views = with_views and views is None
        result = renderer(
            features[b, t],
            frame_points(batch, b, t),
            targets,
            motion=frame_motion(batch, b, t, renderer.grid),
            time_scale=frame_interval(batch, b),
            generator=generator,
            return_images=want_views,
        )
        if result.skipped is not None:
            skipped += 1
            continue
        done.append(result)
        if want_views and result.images is not None:
            views = _views_image(result.images[0], targets.images)
    if not done:
        zero = renderer.zero_loss(features)
        return RendererTerm(zero, zero.clone(), {"rendered": 0.0, "skipped": float(skipped)}, views)
    logs = {
        "rendered": float(len(done)),
        "skipped": float(skipped),
        "gaussians": float(np.mean([d.num_gaussians for d in done])),
        "rgb_first": float(np.mean([d.rgb_steps[0] for d in done])),
        "rgb_last": float(np.mean([d.rgb_steps[-1] for d in done])),
    }
    l_pc = torch.stack([d.l_pc for d in done]).mean()
    l_rgb = torch.stack([d.l_rgb for d in done]).mean()
    return RendererTerm(l_pc, l_rgb, logs, views)


def _views_image(rgb: torch.Tensor, real: torch.Tensor) -> np.ndarray:
    """Rendered (S*V, H, W, 3) in [0, 1] and real (S, V, H, W, 3) -> the frame's own V views, rendered over real."""
    v = real.shape[1]
    top = rgb[:v].detach().float().clamp(0, 1).cpu()
    bottom = real[0].detach().float().clamp(0, 1).cpu()
    rows = [torch.cat(list(x), dim=1) for x in (top, bottom)]  # (H, V*W, 3) each
    return (torch.cat(rows, dim=0).numpy() * 255).round().astype(np.uint8)
