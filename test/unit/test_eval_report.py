import json

import numpy as np
import pytest
import torch

from tacocc_core.checkpoint import save_checkpoint
from tacocc_core.cli import main
from tacocc_core.config import load_preset
from tacocc_core.geometry import GridSpec
from tacocc_core.labels import CLASS_NAMES
from tacocc_core.metrics import OccupancyEvaluator
from tacocc_core.model.tacocc import TACOcc
from tacocc_core.train.eval_report import report_dict, report_markdown, write_report
from tacocc_core.train.evaluation import EvalResult, add_k_histogram


def _result():
    grid = GridSpec((-2.0, -2.0, 0.0), (1.0, 1.0, 1.0), (4, 4, 1))
    evaluator = OccupancyEvaluator(grid, bands_m=(1.0,))
    truth = np.zeros((4, 4, 1), np.uint8)
    truth[0, 0, 0] = 4  # car
    truth[1, 1, 0] = 1  # barrier, inside 1 m
    pred = truth.copy()
    pred[0, 0, 0] = 0  # the car is missed
    pred[3, 3, 0] = 4  # and predicted elsewhere
    evaluator.update(pred, truth)
    hist = {}
    add_k_histogram(hist, {"image": {0: {1: 3, 2: 1}}})
    add_k_histogram(hist, {"image": {0: {1: 1, 3: 5}}})
    return EvalResult(evaluator, hist, frames=1, unlabelled=2)


def test_tables_hold_the_scores_of_the_confusion_matrix():
    result = _result()
    md = report_markdown(result, {"checkpoint": "x.pt"})
    header = next(line for line in md.splitlines() if line.startswith("| IoU | mIoU |"))
    assert header.split(" | ")[2:] == list(CLASS_NAMES[1:-1]) + [CLASS_NAMES[-1] + " |"]
    row = md.splitlines()[md.splitlines().index(header) + 2].strip("| ").split(" | ")
    # geometry: TP 1 (barrier), FP 1, FN 1 -> 1/3; barrier IoU 1, car IoU 0 -> mIoU 0.5
    assert row[:2] == ["33.33", "50.00"] and row[2] == "100.00" and row[5] == "0.00" and row[3] == "-"
    assert "| 1 m | 100.00 | 100.00 | 4 |" in md  # the 4 central voxels: the barrier and 3 empty
    assert "| image | 0 | 40.00 | 10.00 | 50.00 | 10 |" in md  # k=1: 4/10, k=2: 1/10, k=3: 5/10
    data = report_dict(result, {"checkpoint": "x.pt"})
    assert data["unlabelled_frames"] == 2 and data["scores"]["all"]["class_iou"]["car"] == 0.0
    assert data["k_histogram"]["share"]["image"]["0"] == {"1": 0.4, "2": 0.1, "3": 0.5}


def test_write_report_leaves_no_temporary_files(tmp_path):
    md, js = write_report(tmp_path / "out", "eval_val", _result(), {"split": "val"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval_val.json", "eval_val.md"]
    assert json.loads(js.read_text())["split"] == "val" and md.read_text().startswith("# Occupancy evaluation")


@pytest.mark.timeout(300)
def test_eval_command_scores_every_labelled_val_frame(synthetic_dataset, tmp_path, capsys):
    config = load_preset("tiny")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ckpt.pt", TACOcc(config).state_dict(), config)
    code = main(["eval", "--checkpoint", str(tmp_path / "ckpt.pt"), "--data", str(synthetic_dataset),
                 "--device", "cpu", "--out", str(tmp_path / "rep")])  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "rep" / "eval_val.json").read_text())
    val_scenes = json.loads((synthetic_dataset / "splits.json").read_text())["val"]
    assert data["frames"] == 4 * len(val_scenes) and data["unlabelled_frames"] == 0
    assert set(data["scores"]) == {"all", "within_25m", "within_50m", "within_100m"}
    shares = data["k_histogram"]["share"]
    assert shares and all(abs(sum(s.values()) - 1) < 1e-9 for m in shares.values() for s in m.values())
    assert "Distance bands" in (tmp_path / "rep" / "eval_val.md").read_text()
    assert "not the Occ3D challenge metric" in data["miou_metric"] and data["intensity_scale"] == 1.0
    assert "occ3d_challenge" not in data  # SurroundOcc labels
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(synthetic_dataset)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_lidar_baseline_and_k_by_class_sections():
    from tacocc_core.train.k_by_class import KByClass

    result = _result()
    grid = result.evaluator.grid
    lidar = OccupancyEvaluator(grid, bands_m=(1.0,))
    truth = np.zeros((4, 4, 1), np.uint8)
    truth[0, 0, 0], truth[1, 1, 0] = 4, 1
    accumulated = np.zeros((4, 4, 1), np.uint8)
    accumulated[1, 1, 0] = 1  # the barrier's voxel has points, the car's has none
    lidar.update(accumulated, truth)
    k = KByClass((1, 2, 3))
    k.update([np.full((4, 4, 1), 3, np.int8)], truth)
    result.lidar_baseline, result.k_by_class = lidar, k
    md = report_markdown(result, {"checkpoint": "x.pt"})
    assert "geometry only): IoU 50.00 against the network's 33.33" in md
    assert (
        "| range | IoU | mIoU | LiDAR accumulation IoU | voxels |" in md
        and "| 1 m | 100.00 | 100.00 | 100.00 | 4 |" in md
    )
    assert "| large objects | 3.00 (0/0/100; 1) |" in md and "| empty | 3.00 (0/0/100; 14) |" in md
    data = report_dict(result, {})
    assert data["lidar_accumulation_iou"]["all"] == 0.5
    assert data["k_by_class"]["by_class"]["image s0"]["barrier"] == [0, 0, 1]


def test_occ3d_section_names_both_means():
    from tacocc_core.occ3d_metric import Occ3DMetric

    result = _result()
    result.occ3d = Occ3DMetric()
    truth = np.array([0, 4, 17], np.uint8).reshape(1, 1, 3)  # others, car, free
    result.occ3d.update(np.array([17, 4, 17], np.uint8).reshape(1, 1, 3), truth, np.ones((1, 1, 3), bool))
    md = report_markdown(result, {"checkpoint": "x.pt"})
    assert "Occ3D challenge mIoU (17 classes with 'others', inside mask_camera)" in md
    # others IoU 0, car 1 -> challenge 50.00; without others 100.00
    assert "| 50.00 | 100.00 |" in md
    data = report_dict(result, {})
    assert data["occ3d_challenge"]["miou"] == pytest.approx(0.5) and data["occ3d_challenge"]["frames"] == 1
