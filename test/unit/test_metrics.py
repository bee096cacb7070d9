import json
import math

import numpy as np
import pytest
import torch

from tacocc_core.geometry import GridSpec
from tacocc_core.labels import OCC3D_GRID, load_occ3d
from tacocc_core.metrics import (
    OccupancyEvaluator,
    confusion_matrix,
    horizontal_distance,
    scores_from_confusion,
)

# Eight voxels along x; the fifth is unlabelled (255).
LINE = GridSpec.from_ranges((0.0, 8.0), (-0.5, 0.5), (0.0, 1.0), 1.0)
TARGET = np.array([0, 4, 4, 7, 255, 11, 0, 4], dtype=np.uint8).reshape(8, 1, 1)
PRED = np.array([0, 4, 0, 7, 4, 11, 7, 11], dtype=np.uint8).reshape(8, 1, 1)


def test_hand_computed_example():
    scores = scores_from_confusion(confusion_matrix(PRED, TARGET))
    assert scores.voxels == 7  # the 255 voxel is left out, its prediction ignored
    # occupied in ground truth: voxels 1 2 3 5 7; predicted: 1 3 5 6 7 -> TP 4, FP 1 (6), FN 1 (2)
    assert scores.geometry_iou == pytest.approx(4 / 6)
    assert scores.class_iou[4] == pytest.approx(1 / 3)  # TP voxel 1; missed voxels 2 and 7
    assert scores.class_iou[7] == pytest.approx(1 / 2)  # TP voxel 3; false positive voxel 6
    assert scores.class_iou[11] == pytest.approx(1 / 2)  # TP voxel 5; false positive voxel 7
    assert scores.class_iou[0] == pytest.approx(1 / 3)  # empty: TP 0; FN 6; FP 2
    assert np.isnan(scores.class_iou[[1, 2, 3, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16]]).all()
    assert scores.miou == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)


def test_accumulation_over_frames_sums_counts_not_scores():
    evaluator = OccupancyEvaluator(LINE, bands_m=(3.0,))
    evaluator.update(PRED, TARGET)
    second = np.zeros_like(PRED)
    second[0] = 2  # a bicycle predicted where there is none: class 2 gets IoU 0 and enters the mean
    evaluator.update(torch.from_numpy(second), torch.zeros_like(torch.from_numpy(TARGET)))
    scores = evaluator.results()["all"]
    assert evaluator.frames == 2 and scores.voxels == 15
    assert scores.class_iou[2] == 0.0
    assert scores.geometry_iou == pytest.approx(4 / 7)  # one more false positive
    assert scores.miou == pytest.approx((1 / 3 + 1 / 2 + 1 / 2 + 0) / 4)
    assert scores.class_iou[0] == pytest.approx(8 / (8 + 2 + 1))  # TP 1 + 7, FN 1 + 1 (voxels 6; 0), FP 1 (voxel 2)


def test_distance_bands_keep_only_near_voxels():
    evaluator = OccupancyEvaluator(LINE, bands_m=(3.0, 100.0))
    evaluator.update(PRED, TARGET)
    results = evaluator.results()
    # centres at x = 0.5 .. 7.5, y = 0: within 3 m are voxels 0, 1, 2 (gt 0 4 4, pred 0 4 0)
    near = results["within_3m"]
    assert near.voxels == 3
    assert near.geometry_iou == pytest.approx(1 / 2)
    assert near.class_iou[4] == pytest.approx(1 / 2)
    assert near.miou == pytest.approx(1 / 2)
    np.testing.assert_array_equal(results["within_100m"].class_iou, results["all"].class_iou)
    assert list(results) == ["all", "within_3m", "within_100m"]


def test_horizontal_distance_of_the_surroundocc_grid():
    grid = GridSpec.from_ranges((-50.0, 50.0), (-50.0, 50.0), (-5.0, 3.0), 0.5)
    distance = horizontal_distance(grid)
    assert distance.shape == (200, 200, 16)
    assert distance.min() == pytest.approx(math.hypot(0.25, 0.25))
    assert (distance <= 25).sum() == pytest.approx(math.pi * 25**2 / 0.25 * 16, rel=0.01)


def test_occ3d_variant_uses_mask_camera_on_the_real_grid(occ3d_labels_path):
    with np.load(occ3d_labels_path) as data:
        semantics, mask = data["semantics"], data["mask_camera"].astype(bool)
    target = load_occ3d(occ3d_labels_path, use_camera_mask=False)
    pred = np.where(target == 255, 0, target).astype(np.uint8)
    pred[~mask] = 16  # wrong everywhere the cameras do not see
    evaluator = OccupancyEvaluator.occ3d()
    assert evaluator.grid == OCC3D_GRID and semantics.shape == OCC3D_GRID.shape
    evaluator.update(pred, target, mask_camera=mask)
    scores = evaluator.results()["all"]
    assert scores.geometry_iou == 1.0 and scores.miou == 1.0
    assert scores.voxels == int((mask & (target != 255)).sum())
    plain = OccupancyEvaluator(OCC3D_GRID)
    plain.update(pred, target)
    assert plain.results()["all"].miou < 1.0  # without the mask the unseen voxels count
    with pytest.raises(ValueError, match="needs mask_camera"):
        evaluator.update(pred, target)


def test_batches_merge_and_json():
    a, b = OccupancyEvaluator(LINE), OccupancyEvaluator(LINE)
    a.update(np.stack([PRED, PRED]), np.stack([TARGET, TARGET]))
    b.update(PRED, TARGET)
    b.update(PRED, TARGET)
    a_dict, b_dict = a.to_dict(), b.to_dict()
    assert a_dict == b_dict and a_dict["frames"] == 2
    a.merge(b)
    assert a.results()["all"].voxels == 28
    text = json.dumps(a.to_dict())  # NaN written as null
    assert "NaN" not in text and json.loads(text)["all"]["class_iou"]["bicycle"] is None
    assert "mIoU (1..16)" in a.table() and "vegetation" in a.table()


def test_bad_input_is_rejected_with_the_values():
    with pytest.raises(ValueError, match=r"prediction shape \(8, 1\) differs"):
        confusion_matrix(PRED[..., 0], TARGET)
    bad = PRED.copy()
    bad[0] = 17
    with pytest.raises(ValueError, match=r"prediction holds labels outside 0..16.*\[17\]"):
        confusion_matrix(bad, TARGET)
    wrong = TARGET.copy()
    wrong[1] = 200
    with pytest.raises(ValueError, match=r"ground truth.*\[200\]"):
        confusion_matrix(PRED, wrong)
    with pytest.raises(ValueError, match=r"got \(4, 1, 1\)"):
        OccupancyEvaluator(LINE).update(PRED[:4], TARGET[:4])
    other = OccupancyEvaluator(LINE, bands_m=(5.0,))
    with pytest.raises(ValueError, match="differ in grid or bands"):
        OccupancyEvaluator(LINE).merge(other)
