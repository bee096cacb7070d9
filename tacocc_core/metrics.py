"""Occupancy metrics, SurroundOcc/OpenOccupancy protocol, accumulated over a dataset.

One 17x17 confusion matrix (rows ground truth, columns prediction) per region is summed over frames;
voxels labelled 255 are left out. From it:
- geometry IoU: occupied (1..16) against empty (0), TP / (TP + FP + FN);
- per-class IoU for 0..16; a class absent from both ground truth and prediction over everything
  seen is NaN;
- mIoU: the mean of the per-class IoU over classes 1..16, NaN entries left out.

Variants: the Occ3D one also leaves out voxels outside `mask_camera`; distance bands give the same
scores for voxels whose centre lies within 25 / 50 / 100 m (horizontal distance from the origin of
the grid's frame, the LiDAR, as in the paper's Table VI).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, OCC3D_GRID

DEFAULT_BANDS_M = (25.0, 50.0, 100.0)


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def confusion_matrix(
    pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, valid: np.ndarray | None = None
) -> np.ndarray:
    """(17, 17) int64 counts, rows = ground truth, columns = prediction, over voxels with target != 255.

    Args:
        pred: (...) integer labels 0..16.
        target: (...) same shape, labels 0..16 or 255.
        valid: (...) bool, optional; only voxels where True count.
    """
    pred, target = _as_numpy(pred), _as_numpy(target)
    if pred.shape != target.shape:
        raise ValueError(f"confusion_matrix: prediction shape {pred.shape} differs from ground truth {target.shape}")
    keep = target != IGNORE
    if valid is not None:
        valid = _as_numpy(valid).astype(bool)
        if valid.shape != target.shape:
            raise ValueError(f"confusion_matrix: mask shape {valid.shape} differs from ground truth {target.shape}")
        keep &= valid
    p, t = pred[keep].astype(np.int64), target[keep].astype(np.int64)
    for name, values in (("prediction", p), ("ground truth", t)):
        bad = (values < 0) | (values >= NUM_CLASSES)
        if bad.any():
            raise ValueError(
                f"confusion_matrix: {name} holds labels outside 0..{NUM_CLASSES - 1} (and 255 in ground truth): "
                f"{sorted(set(values[bad].tolist()))[:10]}"
            )
    counts = np.bincount(t * NUM_CLASSES + p, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES)


@dataclass(frozen=True)
class OccupancyScores:
    """Scores of one confusion matrix.

    Args:
        geometry_iou: occupied-vs-empty IoU in [0, 1] (NaN with no occupied voxel in either).
        class_iou: (17,) float64 IoU of classes 0..16, NaN where a class occurs in neither.
        miou: mean of class_iou[1:] ignoring NaN (NaN if all are).
        voxels: voxels counted.
    """

    geometry_iou: float
    class_iou: np.ndarray
    miou: float
    voxels: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: NaN as None, per-class IoU by class name."""

        def clean(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "geometry_iou": clean(self.geometry_iou),
            "miou": clean(self.miou),
            "voxels": self.voxels,
            "class_iou": {name: clean(v) for name, v in zip(CLASS_NAMES, self.class_iou, strict=True)},
        }


def scores_from_confusion(matrix: np.ndarray) -> OccupancyScores:
    """(17, 17) confusion matrix (rows ground truth) -> OccupancyScores."""
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        class_iou = tp / (m.sum(0) + m.sum(1) - tp)
        geo_tp = m[1:, 1:].sum()
        geometry_iou = geo_tp / (geo_tp + m[0, 1:].sum() + m[1:, 0].sum())
    semantic = class_iou[1:]
    miou = float(np.nanmean(semantic)) if np.isfinite(semantic).any() else float("nan")
    return OccupancyScores(float(geometry_iou), class_iou, miou, int(m.sum()))


def horizontal_distance(grid: GridSpec) -> np.ndarray:
    """(X, Y, Z) float64 distance in the x-y plane of every voxel centre from the frame's origin."""
    centres = grid.centers()
    return np.hypot(centres[..., 0], centres[..., 1])


class OccupancyEvaluator:
    """Accumulates confusion matrices over frames: all voxels plus distance bands.

    Args:
        grid: the label grid (its frame's origin is the centre of the distance bands).
        bands_m: radii of the bands, metres; each band holds the voxels within that radius.
        use_camera_mask: the Occ3D variant: every `update` must pass `mask_camera`, and voxels outside
            it are left out.
    """

    def __init__(
        self, grid: GridSpec, bands_m: tuple[float, ...] = DEFAULT_BANDS_M, use_camera_mask: bool = False
    ) -> None:
        self.grid = grid
        self.bands_m = tuple(float(b) for b in bands_m)
        self.use_camera_mask = use_camera_mask
        distance = horizontal_distance(grid)
        self._band_masks = {f"within_{b:g}m": distance <= b for b in self.bands_m}
        self.matrices = {name: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for name in ("all", *self._band_masks)}
        self.frames = 0

    @classmethod
    def occ3d(cls, bands_m: tuple[float, ...] = DEFAULT_BANDS_M) -> OccupancyEvaluator:
        """The Occ3D-nuScenes variant: its 200x200x16 grid at 0.4 m (ego frame), inside mask_camera only."""
        return cls(OCC3D_GRID, bands_m, use_camera_mask=True)

    def update(
        self,
        pred: np.ndarray | torch.Tensor,
        target: np.ndarray | torch.Tensor,
        mask_camera: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        """Add frames.

        Args:
            pred: (X, Y, Z) or (B, X, Y, Z) predicted labels 0..16.
            target: same shape, ground truth 0..16 or 255.
            mask_camera: same shape, bool/0-1; required by (and only used in) the Occ3D variant.
        """
        pred, target = _as_numpy(pred), _as_numpy(target)
        if target.shape[-3:] != tuple(self.grid.shape) or target.ndim not in (3, 4):
            raise ValueError(
                f"OccupancyEvaluator: expected (X, Y, Z) or (B, X, Y, Z) labels on the grid {self.grid.shape}, "
                f"got {target.shape}"
            )
        valid = np.ones(target.shape, dtype=bool)
        if self.use_camera_mask:
            if mask_camera is None:
                raise ValueError("OccupancyEvaluator: the Occ3D variant needs mask_camera with every update")
            valid = _as_numpy(mask_camera).astype(bool)
        self.matrices["all"] += confusion_matrix(pred, target, valid)
        for name, band in self._band_masks.items():
            self.matrices[name] += confusion_matrix(pred, target, valid & np.broadcast_to(band, target.shape))
        self.frames += 1 if target.ndim == 3 else target.shape[0]

    def merge(self, other: OccupancyEvaluator) -> None:
        """Add the counts of another evaluator of the same grid and bands (e.g. from another worker)."""
        if other.grid != self.grid or other.bands_m != self.bands_m:
            raise ValueError("OccupancyEvaluator.merge: evaluators differ in grid or bands")
        for name, matrix in other.matrices.items():
            self.matrices[name] += matrix
        self.frames += other.frames

    def results(self) -> dict[str, OccupancyScores]:
        """Scores of every region: 'all', then 'within_25m', 'within_50m', 'within_100m'."""
        return {name: scores_from_confusion(matrix) for name, matrix in self.matrices.items()}

    def to_dict(self) -> dict[str, object]:
        """JSON-ready results with the frame count."""
        return {"frames": self.frames, **{name: s.to_dict() for name, s in self.results().items()}}

    def table(self) -> str:
        """A plain-text table: one row per class, one column per region (IoU in percent)."""
        results = self.results()
        names = list(results)
        lines = [f"{'':22s}" + "".join(f"{n:>13s}" for n in names)]

        def row(label: str, values: list[float]) -> str:
            cells = "".join(f"{'-' if np.isnan(v) else f'{100 * v:.1f}':>13s}" for v in values)
            return f"{label:22s}{cells}"

        lines.append(row("IoU (geometry)", [results[n].geometry_iou for n in names]))
        lines.append(row("mIoU (1..16)", [results[n].miou for n in names]))
        for c in range(1, NUM_CLASSES):
            lines.append(row(CLASS_NAMES[c], [results[n].class_iou[c] for n in names]))
        return "\n".join(lines)
