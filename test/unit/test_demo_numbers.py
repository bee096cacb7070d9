import numpy as np
import pytest

from tacocc_core.demo.markdown import report_markdown
from tacocc_core.demo.numbers import demo_numbers
from tacocc_core.demo.provenance import Provenance
from tacocc_core.geometry import GridSpec
from tacocc_core.recording import Recording

GRID = GridSpec((-2.0, -2.0, 0.0), (1.0, 1.0, 1.0), (4, 4, 1))


def recording() -> Recording:
    truth = np.zeros((4, 4, 1), np.uint8)
    truth[0, 0, 0], truth[1, 1, 0] = 4, 1
    return Recording(
        bag="b",
        model_config="demo",
        checkpoint="c.pt",
        rate=1.0,
        expected_stamps=(10, 20, 30),
        received_stamps=(10, 20),
        latency_ms={10: 5.0, 20: 6.0},
        diagnostics={},
        node_exit_code=0,
        preds={10: truth.copy(), 20: truth.copy()},
        gts={10: truth},  # stamp 20 has no ground truth: not scored
    )


def test_lidar_baseline_scored_over_the_scored_frames():
    accumulated = np.zeros((4, 4, 1), np.uint8)
    accumulated[1, 1, 0] = 1
    accumulated[3, 3, 0] = 1
    baseline = {10: accumulated, 20: np.zeros((4, 4, 1), np.uint8)}
    numbers = demo_numbers(recording(), GRID, baseline)
    assert numbers.overall.geometry_iou == 1.0
    assert numbers.lidar_baseline_iou == pytest.approx(1 / 3)  # TP 1, FP 1, FN 1
    assert numbers.to_dict()["lidar_accumulation_iou"] == pytest.approx(1 / 3)
    provenance = Provenance("c.pt", "demo", "b", 1.0, "", {})
    md = report_markdown(numbers, provenance, ["f0.png", "f1.png"], "a.gif")
    assert "| geometry IoU of the LiDAR accumulation baseline (the node's input sweeps, voxelised) | 33.3 |" in md
    assert demo_numbers(recording(), GRID).lidar_baseline_iou is None
    with pytest.raises(ValueError, match="no grid for stamp 10"):
        demo_numbers(recording(), GRID, {20: accumulated})
