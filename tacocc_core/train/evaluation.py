"""Scoring a network on held-out scenes the way it runs online: frame after frame, scene after scene.

Each scene is streamed through a `Predictor` (the inference API of the ROS node), so the temporal state is
carried as in deployment and every keyframe is scored exactly once. Frames without labels are still run
(they feed the temporal state) but not scored. Under several processes the scenes are dealt round-robin
and the confusion matrices summed over ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tacocc_core.data.label_resample import nearest
from tacocc_core.data.nuscenes_reader import NuScenesReader
from tacocc_core.data.sequences import scene_samples, split_scenes
from tacocc_core.flicker import FlickerCounts, FlickerMeter
from tacocc_core.geometry import invert_transform
from tacocc_core.labels import EMPTY, IGNORE, OCC3D_GRID
from tacocc_core.lidar_baseline import lidar_accumulation
from tacocc_core.metrics import OccupancyEvaluator
from tacocc_core.occ3d_metric import Occ3DMetric, to_occ3d_labels
from tacocc_core.predictor import Predictor
from tacocc_core.train.distributed import DistContext, all_reduce_sum
from tacocc_core.train.k_by_class import KByClass

KHistogram = dict[str, dict[int, dict[int, int]]]


@dataclass
class EvalResult:
    """Scores of one split.

    Args:
        evaluator: confusion matrices (all voxels and the distance bands), summed over ranks.
        k_histogram: chosen-k counts {modality: {scale: {k: count}}} over the frames this rank ran.
        frames: frames scored (with labels), over all ranks.
        unlabelled: frames run but not scored (no labels), over all ranks.
        flicker: label flips of static voxels between consecutive labelled frames (`flicker.py`), all ranks.
        lidar_baseline: the same frames scored for the accumulated LiDAR sweeps (geometry IoU only, see
            tacocc_core.lidar_baseline), summed over ranks; None when not asked for.
        k_by_class: chosen k per ground-truth class of the query voxel, over the labelled frames this rank
            ran; None when not asked for.
        occ3d: the Occ3D challenge metric (occ3d_metric.py) of the same frames, the prediction carried onto
            the Occ3D grid (ego frame); None unless the reader's labels are Occ3D.
    """

    evaluator: OccupancyEvaluator
    k_histogram: KHistogram = field(default_factory=dict)
    frames: int = 0
    unlabelled: int = 0
    flicker: FlickerCounts = field(default_factory=FlickerCounts)
    lidar_baseline: OccupancyEvaluator | None = None
    k_by_class: KByClass | None = None
    occ3d: Occ3DMetric | None = None


def occ3d_prediction(labels: np.ndarray, predictor_grid, lidar2ego: np.ndarray) -> np.ndarray:
    """A prediction on the network's grid (LiDAR frame) -> Occ3D labels (0..17) on OCC3D_GRID (ego frame).

    Each Occ3D voxel takes the prediction under its centre; voxels outside the network's grid read as free.
    """
    ego = nearest(labels, predictor_grid, OCC3D_GRID, dst2src=invert_transform(lidar2ego))
    ego[ego == IGNORE] = EMPTY
    return to_occ3d_labels(ego)


def split_streams(reader: NuScenesReader, split: str) -> list[list[str]]:
    """Sample tokens of each scene of `split`, in time order."""
    return [scene_samples(reader.nusc, name) for name in split_scenes(reader.nusc, split)]


def add_k_histogram(total: KHistogram, more: KHistogram) -> None:
    """Total += more, entry by entry (nested {modality: {scale: {k: count}}})."""
    for modality, scales in more.items():
        for scale, counts in scales.items():
            slot = total.setdefault(modality, {}).setdefault(int(scale), {})
            for k, n in counts.items():
                slot[int(k)] = slot.get(int(k), 0) + int(n)


def evaluate_streams(
    predictor: Predictor,
    reader: NuScenesReader,
    streams: list[list[str]],
    ctx: DistContext | None = None,
    max_frames: int | None = None,
    on_frame: Callable[[str], None] | None = None,
    baseline: bool = False,
) -> EvalResult:
    """Run every scene of `streams` (this rank's share) through `predictor` and score labelled frames.

    Args:
        predictor: the network; its temporal state is reset at the start of every scene.
        reader: reads the frames (labels on the predictor's grid).
        streams: tokens per scene (`split_streams`).
        ctx: the process group (scenes rank::world_size on each rank); None: a single process.
        max_frames: stop after this many frames on this rank (quick validation of a long split).
        on_frame: called with each token after it ran (progress).
        baseline: also score the LiDAR accumulation baseline and count the chosen k per class.

    Raises:
        RuntimeError: a frame the network could not process (names the sample token).
    """
    ctx = ctx or DistContext()
    evaluator = OccupancyEvaluator(predictor.grid)
    histogram: KHistogram = {}
    flicker = FlickerMeter(predictor.grid)
    lidar = OccupancyEvaluator(predictor.grid) if baseline else None
    fuser = predictor.model.encoder.fuser
    k_by_class = KByClass(fuser.candidates) if baseline and fuser.candidates else None
    occ3d = Occ3DMetric() if reader.options.labels == "occ3d" else None
    counts = [0, 0]
    done = 0
    for scene in streams[ctx.rank :: ctx.world_size]:
        predictor.reset()
        flicker.reset()
        for token in scene:
            if max_frames is not None and done >= max_frames:
                break
            frame = reader.frame(token)
            prediction = predictor.predict(frame, return_k_maps=k_by_class is not None)
            if prediction.error is not None:
                raise RuntimeError(f"evaluation: sample {token}: {prediction.error}")
            add_k_histogram(histogram, prediction.k_histogram)
            flicker.update(prediction.labels, frame.labels, frame.lidar2global)
            if frame.labels is None:
                counts[1] += 1
            else:
                evaluator.update(prediction.labels, frame.labels)
                if lidar is not None:
                    lidar.update(lidar_accumulation(frame.points, predictor.config), frame.labels)
                if k_by_class is not None and prediction.k_maps is not None:
                    k_by_class.update(prediction.k_maps, frame.labels)
                truth = reader.occ3d_ground_truth(token) if occ3d is not None else None
                if occ3d is not None and truth is not None:
                    semantics, mask, lidar2ego = truth
                    occ3d.update(occ3d_prediction(prediction.labels, predictor.grid, lidar2ego), semantics, mask)
                counts[0] += 1
            done += 1
            if on_frame is not None:
                on_frame(token)
    for ev in (evaluator, lidar):
        if ev is not None:
            for name, matrix in ev.matrices.items():
                ev.matrices[name] = all_reduce_sum(matrix, ctx)
    scored, unlabelled = (int(x) for x in all_reduce_sum(np.asarray(counts, dtype=np.int64), ctx))
    evaluator.frames = scored
    flips = FlickerCounts.from_array(all_reduce_sum(flicker.counts.as_array(), ctx))
    if lidar is not None:
        lidar.frames = scored
    if occ3d is not None:
        occ3d.matrix = all_reduce_sum(occ3d.matrix, ctx)
        occ3d.frames = int(all_reduce_sum(np.asarray([occ3d.frames], dtype=np.int64), ctx)[0])
    return EvalResult(evaluator, histogram, scored, unlabelled, flips, lidar, k_by_class, occ3d)
