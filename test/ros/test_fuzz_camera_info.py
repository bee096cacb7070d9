"""Generated CameraInfo messages against the node's intrinsics check (tacocc_ros/messages/camera_info.py).

A pinhole K (finite, positive focal lengths, any skew and principal point, last row 0 0 1), with any
size, distortion model and D, comes back as the same 3x3 matrix; K broken one entry at a time (a focal
length zero, negative or non-finite, any entry NaN or infinite, a last row that is not 0 0 1) raises
CameraInfoError naming the topic, the entry and its value.
"""

from __future__ import annotations

import math

import fuzz_tally
import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st
from sensor_msgs.msg import CameraInfo

from tacocc_ros.messages.camera_info import CameraInfoError, camera_intrinsics

INFO = "CameraInfo"
TOPIC = "/CAM_FRONT/camera_info"
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
focal = st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False)
models = st.sampled_from(["plumb_bob", "rational_polynomial", "equidistant", "", "unknown model"])


@st.composite
def good_info(draw) -> CameraInfo:
    msg = CameraInfo()
    msg.width, msg.height = draw(st.integers(0, 4096)), draw(st.integers(0, 4096))
    msg.distortion_model = draw(models)
    msg.d = draw(st.lists(finite, max_size=14))
    fx, fy, skew, cx, cy = draw(focal), draw(focal), draw(finite), draw(finite), draw(finite)
    msg.k = [fx, skew, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    return msg


@st.composite
def bad_info(draw) -> tuple[str, CameraInfo, tuple[str, ...]]:
    msg = draw(good_info())
    k = list(msg.k)
    kind = draw(st.sampled_from(["focal", "non_finite", "last_row"]))
    if kind == "focal":
        index = draw(st.sampled_from([0, 4]))
        k[index] = draw(st.one_of(st.just(0.0), st.floats(-1e6, 0.0, allow_nan=False)))
        words = (f"K[{index // 3}, {index // 3}]", repr(k[index]).replace("'", ""))
    elif kind == "non_finite":
        index = draw(st.integers(0, 8))
        k[index] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        words = (f"K[{index // 3}, {index % 3}]", "not a finite number")
    else:
        index = draw(st.integers(6, 8))
        k[index] = draw(finite.filter(lambda v, i=index: v != (1.0 if i == 8 else 0.0)))
        words = ("last row",)
    msg.k = k
    return kind, msg, words


@given(st.one_of(good_info().map(lambda m: ("good", m, ())), bad_info()))
@example(("focal", CameraInfo(k=[0.0] * 9), ("K[0, 0]", "0.0")))  # the load driver's zero_k fault
def test_generated_camera_info_gives_its_k_or_raises_naming_the_entry(case):
    kind, msg, words = case
    outcome = fuzz_tally.check(INFO, kind, lambda: camera_intrinsics(msg, source=TOPIC), CameraInfoError)
    if kind == "good":
        assert outcome.error is None, outcome.message
        np.testing.assert_array_equal(outcome.value, np.asarray(msg.k, dtype=np.float64).reshape(3, 3))
        assert outcome.value.shape == (3, 3) and outcome.value.dtype == np.float64
    else:
        assert outcome.error is not None, f"{kind}: a broken K was accepted: {list(msg.k)}"
        assert TOPIC in outcome.message
        for word in words:
            assert word in outcome.message, f"{kind}: {word!r} not in {outcome.message!r}"


def test_a_k_whose_last_row_is_not_0_0_1_is_refused():
    """Accepted before the check moved out of the node: only the focal lengths and finiteness were tested."""
    msg = CameraInfo(k=[500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 0.0])
    with np.testing.assert_raises_regex(CameraInfoError, r"last row is \[0.0, 0.0, 0.0\]"):
        camera_intrinsics(msg, source=TOPIC)
