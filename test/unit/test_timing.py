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


def test_median_wall_cpu_ms_warms_up_once_and_times_each_call():
    from tacocc_core.timing import median_wall_cpu_ms

    calls = []
    wall, cpu = median_wall_cpu_ms(lambda: (calls.append(1), time.sleep(0.02)), repeats=3)
    assert len(calls) == 4
    assert 20.0 <= wall < 1000.0 and 0.0 <= cpu < wall  # sleeping costs wall time, not CPU time
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        median_wall_cpu_ms(lambda: None, repeats=0)
