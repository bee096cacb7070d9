"""tacocc_core.recording: a replay recording survives the round trip; broken ones are named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tacocc_core.recording import GRIDS_FILE, Recording, RecordingError, load_recording, save_recording


def make_recording(rng: np.random.Generator) -> Recording:
    stamps = (100, 200, 300)
    preds = {s: rng.integers(0, 17, (4, 5, 2), dtype=np.uint8) for s in stamps[:2]}
    gts = {s: rng.integers(0, 17, (4, 5, 2), dtype=np.uint8) for s in stamps}
    return Recording(
        bag="scene.mcap", model_config="tiny", checkpoint="demo.pt", rate=1.0,
        expected_stamps=stamps, received_stamps=stamps[:2], latency_ms={100: 12.5, 200: 30.0},
        diagnostics={"published": "2", "k=1": "3"}, node_exit_code=0, preds=preds, gts=gts,
    )  # fmt: skip


def test_round_trip_keeps_every_grid_and_fact(tmp_path):
    original = make_recording(np.random.default_rng(0))
    save_recording(tmp_path / "rec", original)
    loaded = load_recording(tmp_path / "rec")
    assert loaded.received_stamps == (100, 200) and loaded.expected_stamps == (100, 200, 300)
    assert loaded.dropped_stamps == (300,)
    assert loaded.latency_ms == {100: 12.5, 200: 30.0} and loaded.diagnostics == original.diagnostics
    for name in ("preds", "gts"):
        want, got = getattr(original, name), getattr(loaded, name)
        assert set(got) == set(want)
        for stamp in want:
            np.testing.assert_array_equal(got[stamp], want[stamp])


def test_saving_over_an_old_recording_replaces_it_whole(tmp_path):
    rng = np.random.default_rng(1)
    save_recording(tmp_path / "rec", make_recording(rng))
    second = make_recording(rng)
    save_recording(tmp_path / "rec", second)
    np.testing.assert_array_equal(load_recording(tmp_path / "rec").preds[100], second.preds[100])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_bad_grids_are_refused_before_anything_is_written(tmp_path):
    bad = make_recording(np.random.default_rng(2))
    bad.preds[100] = np.full((4, 5, 2), 17, np.uint8)
    with pytest.raises(RecordingError, match="pred_100 holds class id 17"):
        save_recording(tmp_path / "rec", bad)
    assert not any(tmp_path.iterdir())


def test_missing_or_inconsistent_files_are_named(tmp_path):
    with pytest.raises(RecordingError, match="recording.json: not found"):
        load_recording(tmp_path)
    save_recording(tmp_path / "rec", make_recording(np.random.default_rng(3)))
    facts = json.loads((tmp_path / "rec" / "recording.json").read_text())
    facts["received_stamps"] = [100]
    (tmp_path / "rec" / "recording.json").write_text(json.dumps(facts))
    with pytest.raises(RecordingError, match="do not match received_stamps"):
        load_recording(tmp_path / "rec")
    del facts["rate"]
    (tmp_path / "rec" / "recording.json").write_text(json.dumps(facts))
    with pytest.raises(RecordingError, match="malformed recording: KeyError"):
        load_recording(tmp_path / "rec")
    (tmp_path / "rec" / GRIDS_FILE).write_bytes(b"not a zip")
    with pytest.raises(RecordingError, match="malformed recording"):
        load_recording(tmp_path / "rec")
