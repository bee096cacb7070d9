"""Generated SurroundOcc `.npy` and Occ3D `.npz` label files against tacocc_core/labels.py.

Well-formed files decode to the dense grid a plain loop over the rows (SurroundOcc) or voxels (Occ3D)
computes. Malformed ones (indices outside the grid, unknown labels, fractional or non-finite values,
wrong shapes, strings, structured, complex, boolean or object arrays, missing arrays, truncated or
foreign bytes, headers that promise more data than the file holds) raise LabelFileError naming the file;
nothing else, and no allocation much beyond the grid and the file (tracemalloc).
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import fuzz_tally
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tacocc_core.labels import IGNORE, NUM_CLASSES, OCC3D_FREE, LabelFileError, load_occ3d, load_surroundocc

NPY, NPZ = "SurroundOcc .npy", "Occ3D .npz"
SHAPE = (6, 5, 4)
MEMORY_BOUND = 8 << 20


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@st.composite
def good_rows(draw) -> np.ndarray:
    n = draw(st.integers(0, 20))
    idx = [draw(st.tuples(*[st.integers(0, s - 1) for s in SHAPE])) for _ in range(n)]
    labels = draw(st.lists(st.integers(0, NUM_CLASSES - 1), min_size=n, max_size=n))
    rows = np.array([[*i, lab] for i, lab in zip(idx, labels, strict=True)], dtype=np.int64).reshape(n, 4)
    return rows.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8, np.uint16, np.float32, np.float64])))


def reference_dense(rows: np.ndarray) -> np.ndarray:
    dense = np.zeros(SHAPE, dtype=np.uint8)
    for x, y, z, label in rows.astype(np.int64).tolist():
        dense[x, y, z] = IGNORE if label == 0 else label
    return dense


weird_arrays = st.sampled_from(
    [
        np.array([["1", "2", "3", "4"]]),
        np.zeros((2, 4), dtype=[("a", "i4")]),
        np.ones((2, 4), dtype=np.complex64),
        np.ones((2, 4), dtype=bool),
        np.zeros((2, 4), dtype="datetime64[s]"),
        np.array([[1, 2, 3, None]], dtype=object),
        np.zeros((3,), dtype=np.int64),
        np.zeros((2, 3), dtype=np.int64),
        np.zeros((1, 1, 4), dtype=np.int64),
        np.zeros((0,), dtype=np.float16),
    ]
)


@st.composite
def bad_npy(draw) -> tuple[str, bytes]:
    rows = draw(good_rows().filter(lambda r: len(r) > 0)).astype(np.float64)
    kind = draw(st.sampled_from(["index", "label", "fraction", "nonfinite", "weird_dtype", "truncated", "foreign",
                                 "huge_header"]))  # fmt: skip
    r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, 3))
    if kind == "index":
        rows[r, min(c, 2)] = draw(st.one_of(st.integers(-(2**40), -1), st.integers(SHAPE[min(c, 2)], 2**40)))
    elif kind == "label":
        rows[r, 3] = draw(st.one_of(st.integers(-1000, -1), st.integers(NUM_CLASSES, 10**6)))
    elif kind == "fraction":
        rows[r, c] += draw(st.floats(0.01, 0.99))
    elif kind == "nonfinite":
        rows[r, c] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "weird_dtype":
        return kind, npy_bytes(draw(weird_arrays))
    elif kind == "truncated":
        data = npy_bytes(rows)
        return kind, data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "foreign":
        return kind, draw(st.binary(max_size=200))
    else:  # a header promising 10**9+ rows over a few bytes of data
        data = npy_bytes(rows)
        n = draw(st.integers(10**9, 10**15))
        return kind, data.replace(f"({len(rows)}, 4)".encode(), f"({n}, 4)".encode()[: len(f"({len(rows)}, 4)")])
    return kind, npy_bytes(rows)


def bounded(load):
    tracemalloc.start()
    try:
        value = load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= MEMORY_BOUND, f"allocated {peak} bytes"
    return value


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("labels")


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning", "ignore::RuntimeWarning")
@given(case=st.one_of(good_rows().map(lambda r: ("good", r)), bad_npy()))
def test_generated_surroundocc_files_decode_like_a_loop_or_raise_naming_the_file(folder, case):
    kind, content = case
    path = folder / "labels.npy"
    path.write_bytes(npy_bytes(content) if kind == "good" else content)
    outcome = fuzz_tally.check(NPY, kind, lambda: bounded(lambda: load_surroundocc(path, SHAPE)), LabelFileError)
    if kind == "good":
        assert outcome.error is None, outcome.message
        np.testing.assert_array_equal(outcome.value, reference_dense(content))
    elif kind != "weird_dtype" or outcome.error is not None:
        assert outcome.error is not None, f"{kind}: a malformed label file loaded"
        assert str(path) in outcome.message


@st.composite
def good_occ3d(draw) -> dict[str, np.ndarray]:
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from([np.uint8, np.int64, np.int16]))
    out = {"semantics": rng.integers(0, OCC3D_FREE + 1, SHAPE).astype(dtype)}
    if draw(st.booleans()):
        out["mask_camera"] = rng.integers(0, 2, SHAPE).astype(draw(st.sampled_from([np.uint8, bool])))
    return out


def reference_occ3d(arrays: dict[str, np.ndarray]) -> np.ndarray:
    sem, mask = arrays["semantics"], arrays.get("mask_camera")
    dense = np.zeros(SHAPE, dtype=np.uint8)
    for i in np.ndindex(SHAPE):
        v = int(sem[i])
        dense[i] = 0 if v == OCC3D_FREE else IGNORE if v == 0 else v
        if mask is not None and not mask[i]:
            dense[i] = IGNORE
    return dense


def npz_bytes(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


@st.composite
def bad_occ3d(draw) -> tuple[str, bytes, bool]:
    arrays = draw(good_occ3d())
    arrays.setdefault("mask_camera", np.ones(SHAPE, dtype=np.uint8))
    kind = draw(st.sampled_from(["label", "shape", "mask_shape", "missing", "weird_dtype", "truncated", "foreign",
                                 "member_not_npy", "pickled"]))  # fmt: skip
    compressed = draw(st.booleans())
    if kind == "label":
        sem = arrays["semantics"].astype(np.float64)
        sem[draw(st.tuples(*[st.integers(0, s - 1) for s in SHAPE]))] = draw(
            st.one_of(st.sampled_from([np.nan, np.inf, -1.0, 18.0, 0.5, 255.0]), st.integers(19, 10**9))
        )
        arrays["semantics"] = sem
    elif kind == "shape":
        arrays["semantics"] = arrays["semantics"].reshape(draw(st.sampled_from([(120,), (6, 20), (2, 3, 5, 4)])))
    elif kind == "mask_shape":
        arrays["mask_camera"] = np.ones(draw(st.sampled_from([(6, 5), (5, 6, 4), (6, 5, 4, 1)])), dtype=np.uint8)
    elif kind == "missing":
        del arrays[draw(st.sampled_from(["semantics", "mask_camera"]))]
    elif kind == "weird_dtype":
        arrays["semantics"] = np.full(SHAPE, draw(st.sampled_from(["a", b"x", 1 + 2j, True])))
    elif kind == "truncated":
        data = npz_bytes(arrays, compressed)
        return kind, data[: draw(st.integers(0, len(data) - 1))], True
    elif kind == "foreign":
        return kind, draw(st.binary(max_size=300)), True
    elif kind == "member_not_npy":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("semantics.npy", draw(st.binary(max_size=100)))
            archive.writestr("mask_camera.npy", npy_bytes(arrays["mask_camera"]))
        return kind, buffer.getvalue(), True
    else:  # an object array: loading it would unpickle
        arrays["semantics"] = np.array([{"a": 1}] * 120, dtype=object).reshape(SHAPE)
    return kind, npz_bytes(arrays, compressed), True


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning", "ignore::RuntimeWarning")
@given(case=st.one_of(good_occ3d().map(lambda a: ("good", a, st.booleans())), bad_occ3d()))
def test_generated_occ3d_files_decode_like_a_loop_or_raise_naming_the_file(folder, case):
    kind, content, _ = case
    path = folder / "labels.npz"
    path.write_bytes(npz_bytes(content, False) if kind == "good" else content)
    use_mask = kind != "good" or "mask_camera" in content

    def load():
        return bounded(lambda: load_occ3d(path, use_camera_mask=use_mask))

    outcome = fuzz_tally.check(NPZ, kind, load, LabelFileError)
    if kind == "good":
        assert outcome.error is None, outcome.message
        np.testing.assert_array_equal(outcome.value, reference_occ3d(content))
    else:
        assert outcome.error is not None, f"{kind}: a malformed label file loaded"
        assert str(path) in outcome.message


# Regressions: the minimal failing examples the generator found (each raised something other than LabelFileError).
@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "EOFError"),  # an empty file
        (npy_bytes(np.zeros((2, 4))).replace(b"(2, 4)", b"(10000"), "TokenError"),  # a header that does not parse
        (npy_bytes(np.array([["1", "2", "3", "4"]])), "must be numbers, got dtype <U1"),  # strings
    ],
)
def test_damaged_or_string_npy_files_are_label_errors(tmp_path, content, match):
    path = tmp_path / "labels.npy"
    path.write_bytes(content)
    with pytest.raises(LabelFileError, match=match):
        load_surroundocc(path, SHAPE)


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# Regressions of the Occ3D reader: the minimal examples of the generated `weird_dtype` and `truncated` cases.
@pytest.mark.parametrize(
    "content, match",
    [
        (_npz(semantics=np.full(SHAPE, "a"), mask_camera=np.ones(SHAPE, bool)), "'semantics' must hold numbers"),
        (_npz(semantics=np.zeros(SHAPE, np.uint8), mask_camera=np.full(SHAPE, "a")), "'mask_camera' must hold"),
        (_npz(semantics=np.zeros(SHAPE, np.uint8), mask_camera=np.ones(SHAPE, bool))[:200], "not a readable .npz"),
    ],
)
def test_occ3d_files_with_text_arrays_or_cut_short_are_label_errors(tmp_path, content, match):
    path = tmp_path / "labels.npz"
    path.write_bytes(content)
    with pytest.raises(LabelFileError, match=match):
        load_occ3d(path)
