import time

import pytest

from tacocc_core.timing import NULL_TIMER, StageTimer


def test_stages_accumulate_and_survive_exceptions():
    timer = StageTimer("cpu")
    with timer.stage("a"):
        time.sleep(0.01)
    with timer.stage("a"):
        time.sleep(0.01)
    with pytest.raises(RuntimeError), timer.stage("b"):
        raise RuntimeError("boom")
    assert timer.ms["a"] >= 20 and "b" in timer.ms


def test_disabled_timer_records_nothing():
    with NULL_TIMER.stage("x"):
        pass
    assert NULL_TIMER.ms == {}
