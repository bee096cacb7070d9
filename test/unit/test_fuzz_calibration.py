"""Generated calibration YAML files against tacocc_core/rig/calibration_file.py (`load_calibration`).

A well-formed file (random rigid transforms, intrinsics, frame names) loads to exactly the values written.
Each malformed file breaks one thing (a key missing or unknown, a matrix of the wrong shape, a non-number,
NaN/Inf, a rotation that is not one, a last row that is not 0 0 0 1, an entry that is not a mapping, the
converter's format tag over a broken body, YAML that does not parse, bytes that are not UTF-8) and must
raise CalibrationError naming the file and the key; loading never writes a file.
"""

from __future__ import annotations

import fuzz_tally
import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from tacocc_core.rig.calibration_file import (
    CAMERA_KEYS,
    FORMAT,
    TOP_KEYS,
    CalibrationError,
    calibration_to_dict,
    load_calibration,
)

BOUNDARY = "calibration YAML"
names = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=10)
coords = st.floats(-100, 100, allow_nan=False)


@st.composite
def rigid(draw) -> list[list[float]]:
    q = draw(st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: sum(v * v for v in q) > 0.1))
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(q).as_matrix()
    matrix[:3, 3] = draw(st.tuples(coords, coords, coords))
    return matrix.tolist()


@st.composite
def good_calibrations(draw) -> dict:
    cameras = {}
    for name in draw(st.lists(names, min_size=1, max_size=3, unique=True)):
        fx, fy = draw(st.floats(1, 5000)), draw(st.floats(1, 5000))
        cameras[name] = {
            "frame_id": draw(names),
            "cam2lidar": draw(rigid()),
            "cam2img": [[fx, 0.0, draw(coords)], [0.0, fy, draw(coords)], [0.0, 0.0, 1.0]],
        }
    return {
        "format": FORMAT,
        "lidar_frame": draw(names),
        "ego_frame": draw(names),
        "lidar2ego": draw(rigid()),
        "cameras": cameras,
    }


junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.lists(st.integers(), max_size=5)
)


@st.composite
def bad_calibrations(draw) -> tuple[str, str | bytes, tuple[str, ...]]:
    """(mutation, file content, words the error must contain)."""
    data = draw(good_calibrations())
    camera = next(iter(data["cameras"]))
    kind = draw(
        st.sampled_from(
            ["missing", "unknown_key", "lidar_frame", "matrix_shape", "matrix_value", "nonfinite", "not_rotation",
             "last_row", "camera_entry", "camera_key", "bag_format", "top_level", "yaml_syntax", "not_utf8"]
        )
    )  # fmt: skip
    words: tuple[str, ...] = ()
    if kind == "missing":
        key = draw(st.sampled_from(["lidar_frame", "cameras", "cam2lidar", "cam2img"]))
        if key in data:
            del data[key]
        else:
            del data["cameras"][camera][key]
        words = (key,)
    elif kind == "unknown_key":
        key = draw(names.filter(lambda k: k not in TOP_KEYS))
        data[key] = draw(junk)
        words = ("unknown keys", repr(key))
    elif kind == "lidar_frame":
        data["lidar_frame"] = draw(st.one_of(st.just(""), st.integers(), st.none(), st.lists(names, max_size=2)))
        words = ("lidar_frame",)
    else:
        key = draw(st.sampled_from(["lidar2ego", "cam2lidar", "cam2img"]))
        holder = data if key == "lidar2ego" else data["cameras"][camera]
        matrix = np.asarray(holder[key], dtype=float)
        if kind == "matrix_shape":
            rows, cols = draw(st.integers(0, 5)), draw(st.integers(0, 5))
            if (rows, cols) == matrix.shape:
                rows += 1
            holder[key] = np.ones((rows, cols)).tolist()
            words = (key, "matrix")
        elif kind == "matrix_value":
            value = draw(st.one_of(st.text(min_size=1, max_size=5).filter(lambda t: not _is_number(t)), st.none()))
            rows = matrix.tolist()
            rows[draw(st.integers(0, len(rows) - 1))][0] = value
            holder[key] = rows
            words = (key,)
        elif kind == "nonfinite":
            matrix[draw(st.integers(0, matrix.shape[0] - 1)), 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            holder[key] = matrix.tolist()
            words = (key, "non-finite")
        elif kind == "not_rotation":
            key = "cam2lidar" if key == "cam2img" else key
            holder = data if key == "lidar2ego" else data["cameras"][camera]
            matrix = np.asarray(holder[key], dtype=float)
            matrix[:3, :3] *= draw(st.sampled_from([0.0, 0.5, 2.0, -1.0]))
            holder[key] = matrix.tolist()
            words = (key, "rigid")
        elif kind == "last_row":
            key = "cam2lidar" if key == "cam2img" else key
            holder = data if key == "lidar2ego" else data["cameras"][camera]
            matrix = np.asarray(holder[key], dtype=float)
            matrix[3, draw(st.integers(0, 3))] += draw(st.sampled_from([0.5, 1.0, -2.0]))
            holder[key] = matrix.tolist()
            words = (key, "rigid")
        elif kind == "camera_entry":
            data["cameras"][camera] = draw(junk)
            words = (f"cameras.{camera}",)
        elif kind == "camera_key":
            data["cameras"][camera][draw(names.filter(lambda k: k not in CAMERA_KEYS))] = 1
            words = (f"cameras.{camera}", "unknown keys")
        elif kind == "bag_format":
            data = {"format": "tacocc_calibration_v1", **{k: draw(junk) for k in draw(st.lists(names, max_size=3))}}
        elif kind == "top_level":
            data = draw(st.one_of(st.lists(junk, max_size=3), st.integers(), st.text(min_size=1, max_size=10)))
            if isinstance(data, str):  # a YAML scalar that is not a mapping
                data = [data]
            words = ("expected a mapping",)
        elif kind == "yaml_syntax":
            text = yaml.safe_dump(data)
            tail = draw(st.sampled_from(["\n  - [", ": {", "\t:", "'"]))
            return kind, text[: draw(st.integers(1, len(text)))] + tail, ()
        else:  # not_utf8
            text = yaml.safe_dump(data).encode()
            at = draw(st.integers(0, len(text)))
            bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80abc"]))
            return kind, text[:at] + bad + text[at:], ()
    return kind, yaml.safe_dump(data), words


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("calibration")


@given(case=st.one_of(good_calibrations().map(lambda d: ("good", d, ())), bad_calibrations()))
def test_generated_calibration_files_load_exactly_or_raise_naming_the_key(folder, case):
    kind, content, words = case
    path = folder / "calibration.yaml"
    if isinstance(content, dict):
        path.write_text(yaml.safe_dump(content))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    outcome = fuzz_tally.check(BOUNDARY, kind, lambda: load_calibration(path, note=print), CalibrationError)
    assert sorted(p.name for p in folder.iterdir()) == ["calibration.yaml"]  # nothing written beside it
    if kind == "good":
        assert outcome.error is None, outcome.message
        loaded = calibration_to_dict(outcome.value)
        assert loaded == content
    elif kind != "yaml_syntax" or outcome.error is not None:  # a cut may still leave valid YAML
        assert outcome.error is not None, f"{kind}: loaded a malformed calibration"
        assert str(path) in outcome.message
        for word in words:
            assert word in outcome.message, f"{kind}: {word!r} not in {outcome.message!r}"


def test_a_calibration_file_that_is_not_utf8_is_a_calibration_error(tmp_path):
    """Regression (the not_utf8 mutation): invalid UTF-8 raised UnicodeDecodeError from the YAML reader."""
    path = tmp_path / "calibration.yaml"
    path.write_bytes(b"lidar_frame: \xff\n")
    with pytest.raises(CalibrationError, match="calibration.yaml: cannot read calibration file .*utf-8"):
        load_calibration(path)


def test_a_reflection_is_not_a_rotation(tmp_path):
    """Regression (found by the generator): lidar2ego diag(-1, -1, -1, 1) is orthonormal and was accepted."""
    path = tmp_path / "calibration.yaml"
    cam = {"cam2lidar": np.eye(4).tolist(), "cam2img": np.eye(3).tolist()}
    mirror = np.diag([-1.0, -1.0, -1.0, 1.0]).tolist()
    path.write_text(yaml.safe_dump({"lidar_frame": "LIDAR_TOP", "lidar2ego": mirror, "cameras": {"CAM_FRONT": cam}}))
    with pytest.raises(CalibrationError, match="lidar2ego: not a rigid transform .*reflection"):
        load_calibration(path)
