"""The Occ3D-nuScenes challenge metric: 18 x 18 confusion inside the camera mask, mIoU over 17 classes.

Occ3D's label space: 0 others, 1..16 the classes of `labels.CLASS_NAMES` (barrier ... vegetation), 17
free. The challenge scores a prediction in that space against the ground truth over the voxels inside
`mask_camera`, summing one confusion matrix over all frames; the IoU of class c is TP / (TP + FP + FN)
and the mIoU is the mean over classes 0..16 ("others" included, "free" left out); a class with neither
ground truth nor prediction anywhere (0 / 0) is left out of the mean.

This package's own Occ3D score (`metrics.OccupancyEvaluator` on labels from `labels.occ3d_to_dense`)
differs: "others" voxels are ignored and the mean runs over the 16 classes 1..16, so its numbers are not
comparable with published Occ3D ones. `Occ3DMetric` gives both the challenge's mIoU and the mean over
1..16 of the same matrix ("without others"); every report says which one it prints.

The network has no "others" class: `to_occ3d_labels` maps its empty class to free and keeps 1..16, so a
ground-truth "others" voxel inside the mask is always a miss (IoU of "others" 0 wherever the ground truth
has it).
"""

from __future__ import annotations

import numpy as np
import torch

from tacocc_core.labels import CLASS_NAMES, EMPTY, OCC3D_FREE

NUM_OCC3D = OCC3D_FREE + 1  # 18
OCC3D_CLASS_NAMES: tuple[str, ...] = ("others", *CLASS_NAMES[1:], "free")
OFFICIAL_NAME = "Occ3D challenge mIoU (17 classes with 'others', inside mask_camera)"
WITHOUT_OTHERS_NAME = "Occ3D mIoU without 'others' (16 classes, inside mask_camera)"


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def to_occ3d_labels(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Labels of this package (0 empty, 1..16 classes) -> Occ3D's (1..16 classes, 17 free), uint8, same shape.

    Raises ValueError on values outside 0..16 (255 included: a prediction names every voxel).
    """
    labels = _as_numpy(labels)
    bad = labels > OCC3D_FREE - 1
    if bad.any():
        raise ValueError(f"to_occ3d_labels: labels outside 0..16: {sorted(set(labels[bad].tolist()))[:10]}")
    out = labels.astype(np.uint8).copy()
    out[labels == EMPTY] = OCC3D_FREE
    return out


class Occ3DMetric:
    """Accumulates the challenge's 18 x 18 confusion matrix (rows ground truth, columns prediction)."""

    def __init__(self) -> None:
        self.matrix = np.zeros((NUM_OCC3D, NUM_OCC3D), np.int64)
        self.frames = 0

    def update(
        self,
        pred: np.ndarray | torch.Tensor,
        semantics: np.ndarray | torch.Tensor,
        mask_camera: np.ndarray | torch.Tensor,
    ) -> None:
        """Add one frame (or a batch: any equal shapes).

        Args:
            pred: predicted Occ3D labels 0..17 (`to_occ3d_labels` for this package's predictions).
            semantics: Occ3D ground truth 0..17.
            mask_camera: bool / 0-1, the voxels scored.

        Raises:
            ValueError: shapes differ or labels lie outside 0..17.
        """
        pred, gt, mask = _as_numpy(pred), _as_numpy(semantics), _as_numpy(mask_camera).astype(bool)
        if not pred.shape == gt.shape == mask.shape:
            raise ValueError(
                f"Occ3DMetric: prediction {pred.shape}, semantics {gt.shape} and mask_camera {mask.shape} differ"
            )
        p, t = pred[mask].astype(np.int64), gt[mask].astype(np.int64)
        for name, values in (("prediction", p), ("semantics", t)):
            bad = (values < 0) | (values >= NUM_OCC3D)
            if bad.any():
                found = sorted(set(values[bad].tolist()))[:10]
                raise ValueError(f"Occ3DMetric: {name} holds labels outside 0..{NUM_OCC3D - 1}: {found}")
        self.matrix += np.bincount(t * NUM_OCC3D + p, minlength=NUM_OCC3D**2).reshape(NUM_OCC3D, NUM_OCC3D)
        self.frames += 1 if gt.ndim <= 3 else int(np.prod(gt.shape[:-3]))

    def class_iou(self) -> np.ndarray:
        """(18,) float64 IoU of classes 0..17, NaN where a class has neither ground truth nor prediction."""
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            return tp / (m.sum(0) + m.sum(1) - tp)

    def miou(self) -> float:
        """The challenge's mIoU: mean IoU of classes 0..16 ("others" included), NaN entries left out."""
        return _nanmean(self.class_iou()[:OCC3D_FREE])

    def miou_without_others(self) -> float:
        """Mean IoU of classes 1..16 of the same matrix (not the challenge's number)."""
        return _nanmean(self.class_iou()[1:OCC3D_FREE])

    def geometry_iou(self) -> float:
        """Occupied (0..16) against free (17) IoU."""
        m = self.matrix
        tp = m[:OCC3D_FREE, :OCC3D_FREE].sum()
        denominator = tp + m[OCC3D_FREE, :OCC3D_FREE].sum() + m[:OCC3D_FREE, OCC3D_FREE].sum()
        return float(tp / denominator) if denominator else float("nan")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: both means under names that say what they are, per-class IoU by Occ3D class name."""

        def clean(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "metric": OFFICIAL_NAME,
            "frames": self.frames,
            "miou": clean(self.miou()),
            "miou_without_others": clean(self.miou_without_others()),
            "geometry_iou": clean(self.geometry_iou()),
            "class_iou": {name: clean(v) for name, v in zip(OCC3D_CLASS_NAMES, self.class_iou(), strict=True)},
        }


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
