import json
import math

import numpy as np
import pytest

from tacocc_core.cli import main
from tacocc_core.labels import IGNORE, NUM_CLASSES
from tacocc_core.train.class_weights import count_labels, inverse_log_weights


def test_counts_leave_out_ignored_voxels_and_name_bad_labels():
    a = np.array([[0, 0, 4], [IGNORE, 16, 4]], np.uint8)
    counts = count_labels([a, np.zeros((2, 2), np.uint8)])
    assert counts[0] == 6 and counts[4] == 2 and counts[16] == 1 and counts.sum() == 9
    with pytest.raises(ValueError, match="grid 1 holds labels outside 0..16"):
        count_labels([a, np.array([17], np.uint8)])


def test_weights_are_inverse_log_frequency_rare_classes_heavier_absent_ones_the_largest():
    counts = np.zeros(NUM_CLASSES, np.int64)
    counts[0], counts[4], counts[7], counts[15] = 10**7, 10**4, 100, 1
    w = inverse_log_weights(counts)
    assert w[0] == pytest.approx(1 / math.log(10**7 + 0.001))
    assert w[7] == pytest.approx(1 / math.log(100.001))
    assert w[0] < w[4] < w[7]
    assert w[7] / w[0] == pytest.approx(math.log(1e7) / math.log(100), rel=1e-4)  # 3.5x, not 10^5 x
    # classes seen fewer than twice (15 once, the others never) take the largest present weight
    assert w[15] == w[7] and w[1] == w[7]
    with pytest.raises(ValueError, match="no class occurs at least twice"):
        inverse_log_weights(np.zeros(NUM_CLASSES))
    with pytest.raises(ValueError, match="need 17 non-negative counts"):
        inverse_log_weights(np.ones(5))


def test_command_counts_a_generated_split_and_writes_weights_a_config_accepts(synthetic_dataset, tmp_path, capsys):
    out = tmp_path / "weights.json"
    assert main(["class-weights", "--data", str(synthetic_dataset), "--split", "train", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())
    counts = np.array(list(payload["counts"].values()))
    assert payload["frames"] > 0 and counts[0] > counts[1:].max()  # free space dominates
    weights = payload["class_weights"]
    assert len(weights) == NUM_CLASSES and weights[0] == min(weights)
    assert "class_weights: [" in printed
    from tacocc_core.config import config_from_dict, config_to_dict, load_preset

    data = config_to_dict(load_preset("tiny"))
    data["loss"]["class_weights"] = weights
    assert config_from_dict(data).loss.class_weights == tuple(weights)
    assert main(["class-weights", "--data", str(tmp_path / "none"), "--split", "train"]) == 2
