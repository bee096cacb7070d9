"""tacocc_core.demo.report: the demo's pictures, animation and report from a replay recording and its bag.

The recording is made without ROS processes but with the node's own pieces: frames from a converted bag
as the node builds them (`tacocc_ros.bags.bag_frames`), a seeded random tiny network through `Predictor`, and
the node's counters and /diagnostics values (`NodeStats`, `build_diagnostics`). One expected frame is
left unreceived, as a drop.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tacocc_core.bags.convert import ConvertOptions, convert_nuscenes
from tacocc_core.config import load_preset
from tacocc_core.demo.provenance import Provenance
from tacocc_core.demo.report import OUTPUTS, REPORT_JSON, ReportOptions, write_demo_report
from tacocc_core.metrics import OccupancyEvaluator
from tacocc_core.predictor import Predictor, PredictorOptions
from tacocc_core.recording import Recording, load_recording, save_recording
from tacocc_ros.bags.bag_frames import bag_frames
from tacocc_ros.node.outputs import build_diagnostics
from tacocc_ros.node.stats import NodeStats


@pytest.fixture(scope="module")
def replayed(synthetic_dataset, tmp_path_factory):
    """(bag, recording dir, grid, summed k histogram of the published frames)."""
    work = tmp_path_factory.mktemp("demo_report")
    bag = convert_nuscenes(synthetic_dataset, "v1.0-mini", work / "bags", None, ConvertOptions(progress=False))[0]
    config = load_preset("tiny")
    torch.manual_seed(0)
    predictor = Predictor(config, None, PredictorOptions(device="cpu", timings=False))
    frames = list(bag_frames(bag, config))
    expected = [f.frame.stamp_ns for f in frames]
    stats = NodeStats()
    preds, gts, latency, k_total = {}, {}, {}, {}
    for bag_frame in frames[:-1]:  # the last one is "dropped"
        stamp = bag_frame.frame.stamp_ns
        start = time.perf_counter()
        prediction = predictor.predict(bag_frame.frame)
        assert prediction.error is None
        latency[stamp] = (time.perf_counter() - start) * 1e3
        preds[stamp] = prediction.labels
        if bag_frame.labels is not None:
            gts[stamp] = bag_frame.labels
        ks = [(k, n) for modality in prediction.k_histogram.values() for s in modality.values() for k, n in s.items()]
        stats.on_k(np.repeat([k for k, _ in ks], [n for _, n in ks]))
        for k, n in ks:
            k_total[k] = k_total.get(k, 0) + n
        stats.on_published(stamp, stamp + int(latency[stamp] * 1e6))
    stats.on_dropped("sync timeout")
    status = build_diagnostics(stats.snapshot(expected[-1]), expected[-1]).status[0]
    recording = Recording(
        bag=str(bag),
        model_config="tiny",
        checkpoint="",
        rate=1.0,
        expected_stamps=tuple(expected),
        received_stamps=tuple(sorted(preds)),
        latency_ms=latency,
        diagnostics={kv.key: kv.value for kv in status.values},
        node_exit_code=0,
        preds=preds,
        gts=gts,
    )
    rec_dir = save_recording(work / "recording", recording)
    return bag, rec_dir, config.grid.spec(), k_total


@pytest.fixture(scope="module")
def report(replayed, tmp_path_factory):
    bag, rec_dir, grid, _ = replayed
    out = tmp_path_factory.mktemp("demo_out")
    provenance = Provenance(checkpoint="random (seed 0)", model_config="tiny", bag=str(bag), rate=1.0)
    return write_demo_report(load_recording(rec_dir), bag, grid, out, provenance, ReportOptions(width=600))


def test_outputs_exist_and_pictures_are_sane(report, replayed):
    recording = load_recording(replayed[1])
    assert [p.name.split("_", 1)[1] for p in report.frames] == [f"{s}.png" for s in recording.received_stamps]
    for path in report.frames:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            width, height = image.size
            assert 600 <= width <= 1400 and 400 <= height <= 3000, (width, height)
            pixels = np.asarray(image)
            assert pixels.std() > 10  # not a blank page
    with Image.open(report.animation) as gif:
        assert gif.format == "GIF" and gif.n_frames == len(report.frames)
    assert sorted(p.name for p in report.out_dir.iterdir()) == sorted(OUTPUTS)  # no staging left behind
    text = report.markdown.read_text()
    for needle in ("geometry IoU", "mIoU", "p50", "p99", "frames dropped", "k histogram", "torch", "cpu_count"):
        assert needle in text


def test_scores_equal_a_recomputation_from_the_recorded_grids(report, replayed):
    recording = load_recording(replayed[1])
    evaluator = OccupancyEvaluator(replayed[2], bands_m=())
    scored = 0
    for stamp in recording.received_stamps:
        if stamp in recording.gts:
            evaluator.update(recording.preds[stamp], recording.gts[stamp])
            scored += 1
    expected = evaluator.results()["all"]
    numbers = json.loads(report.json.read_text())["numbers"]
    assert scored >= 1 and numbers["frames_scored"] == scored
    assert numbers["scores"]["geometry_iou"] == pytest.approx(expected.geometry_iou)
    assert numbers["scores"]["miou"] == pytest.approx(expected.miou)
    for name, value in numbers["scores"]["class_iou"].items():
        reference = expected.to_dict()["class_iou"][name]
        assert (value is None and reference is None) or value == pytest.approx(reference), name
    assert f"| mIoU (classes 1..16) | {100 * expected.miou:.1f} |" in report.markdown.read_text()


def test_frame_counts_latency_and_k_histogram(report, replayed):
    recording = load_recording(replayed[1])
    numbers = json.loads(report.json.read_text())["numbers"]
    assert numbers["frames_expected"] == len(recording.expected_stamps)
    assert numbers["frames_received"] == len(recording.received_stamps)
    assert numbers["frames_dropped"] == numbers["frames_expected"] - numbers["frames_received"] == 1
    assert numbers["dropped_stamps"] == [recording.expected_stamps[-1]]
    latencies = list(recording.latency_ms.values())
    assert numbers["latency_end_to_end_ms"]["p50"] == pytest.approx(float(np.percentile(latencies, 50)))
    assert numbers["latency_end_to_end_ms"]["p99"] == pytest.approx(float(np.percentile(latencies, 99)))
    assert numbers["latency_node_ms"]["p50"] == pytest.approx(float(recording.diagnostics["latency p50 (ms)"]))
    assert numbers["node_published"] == len(recording.received_stamps)
    assert numbers["node_dropped"] == {"dropped sync timeout": 1}
    k_total = replayed[3]
    # The node's diagnostics list the k values some query chose; a candidate nobody chose has no entry.
    assert {int(k): n for k, n in numbers["k_histogram"].items()} == {k: n for k, n in k_total.items() if n}
    assert sum(k_total.values()) > 0


def test_rewrite_replaces_the_previous_report_and_a_failure_keeps_it(report, replayed, tmp_path):
    bag, rec_dir, grid, _ = replayed
    recording = load_recording(rec_dir)
    provenance = Provenance(checkpoint="", model_config="tiny", bag=str(bag), rate=1.0)
    options = ReportOptions(width=450, gif_width=300)
    write_demo_report(recording, bag, grid, tmp_path, provenance, options)
    fewer = Recording(
        **{
            **recording.__dict__,
            "received_stamps": recording.received_stamps[:1],
            "preds": {recording.received_stamps[0]: recording.preds[recording.received_stamps[0]]},
        }
    )
    again = write_demo_report(fewer, bag, grid, tmp_path, provenance, options)
    assert sorted((tmp_path / "frames").iterdir()) == list(again.frames)  # no frame of the first run left
    before = (tmp_path / REPORT_JSON).read_text()
    wrong_grid = load_preset("nuscenes_r50_256x704").grid.spec()
    with pytest.raises(ValueError, match="model grid"):
        write_demo_report(recording, bag, wrong_grid, tmp_path, provenance, options)
    assert (tmp_path / REPORT_JSON).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)


def test_a_recording_without_grids_is_refused_with_its_bag_named(replayed, tmp_path):
    bag, rec_dir, grid, _ = replayed
    recording = load_recording(rec_dir)
    empty = Recording(**{**recording.__dict__, "received_stamps": (), "preds": {}, "latency_ms": {}})
    with pytest.raises(ValueError, match=f"{bag}.*published no grid"):
        write_demo_report(empty, bag, grid, tmp_path, Provenance("", "tiny", str(bag), 1.0))
    assert not (tmp_path / REPORT_JSON).exists()
