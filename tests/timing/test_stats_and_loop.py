"""Statistics on known samples, and the clocks' stopping rules."""

import statistics

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from torchprof_lab.timing.loop import CpuClock, run_back_to_back, sample
from torchprof_lab.timing.stats import LatencyStats, percentile


def test_known_samples():
    s = LatencyStats.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.n, s.min, s.max, s.mean, s.p50) == (5, 1.0, 5.0, 3.0, 3.0)
    assert s.iqr == pytest.approx(2.0)  # 4 - 2
    assert s.p90 == pytest.approx(4.6) and s.p99 == pytest.approx(4.96)
    assert s.std == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]))
    assert s.samples == (5.0, 1.0, 3.0, 2.0, 4.0)  # raw order kept for JSON


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=60), st.floats(0, 100))
def test_percentile_matches_numpy(values, q):
    assert percentile(sorted(values), q) == pytest.approx(np.percentile(values, q), rel=1e-9, abs=1e-12)


def test_single_sample_and_empty():
    s = LatencyStats.of([0.25])
    assert s.std == 0.0 and s.p99 == 0.25 and s.iqr == 0.0
    with pytest.raises(ValueError):
        LatencyStats.of([])


def test_noise_and_small_n_warnings():
    quiet = LatencyStats.of([1.0] * 200)
    assert quiet.warnings == []
    noisy = LatencyStats.of([1.0, 1.0, 2.0, 2.0])
    assert any("noisy" in w for w in noisy.warnings) and any("p99" in w for w in noisy.warnings)


def test_drift_is_the_step_between_halves_in_time_order():
    # the shape this machine shows: ~9 s of CPU boost at 25 ms, then 30 ms sustained
    stepped = LatencyStats.of([0.025] * 20 + [0.030] * 20)
    assert stepped.drift == pytest.approx(0.20)
    assert any(w.startswith("drifted: the second half of the run was +20%") for w in stepped.warnings)
    assert stepped.to_dict()["drift"] == pytest.approx(0.20) and stepped.to_dict()["warnings"] == stepped.warnings
    assert any("boost ending" in w for w in stepped.warnings)
    faster = LatencyStats.of([0.030] * 20 + [0.025] * 20)
    assert any(w.startswith("drifted: the second half of the run was -17%") and "warm-up too short" in w
               for w in faster.warnings)
    # the same values shuffled into alternation have no drift: order matters, not the spread
    alternating = LatencyStats.of([0.025, 0.030] * 20)
    assert alternating.drift == pytest.approx(0.0)
    assert not any("drifted" in w for w in alternating.warnings)
    assert LatencyStats.of([0.025] * 9 + [0.050]).drift == pytest.approx(0.0)  # one outlier: median holds
    assert LatencyStats.of([0.025] * 9).drift is None  # too few samples to split


def test_sample_meets_min_runs_and_min_time():
    calls = []
    samples = sample(lambda: calls.append(1), CpuClock(), min_time=0.0, min_runs=7, max_runs=100, max_time=5)
    assert len(samples) == len(calls) == 7 and all(s >= 0 for s in samples)
    samples = sample(lambda: None, CpuClock(), min_time=0.02, min_runs=1, max_runs=10**7, max_time=5)
    assert sum(samples) >= 0.02


def test_sample_caps_and_runs_after_outside_the_timed_region():
    samples = sample(lambda: None, CpuClock(), min_time=100, min_runs=1, max_runs=50, max_time=100)
    assert len(samples) == 50

    class LoggingClock:  # the order of the calls, not wall time: after() runs outside start..stop
        def start(self):
            log.append("start")
            return 0.0

        def stop(self, started):
            log.append("stop")
            return 1.0

    log = []
    samples = sample(lambda: log.append("step"), LoggingClock(), min_runs=3, max_runs=3,
                     after=lambda: log.append("after"))
    assert samples == [1.0] * 3 and log == ["start", "step", "stop", "after"] * 3
    assert sample(lambda: None, CpuClock(), min_runs=0, min_time=0) == []  # no warm-up asked: none run


def test_back_to_back_is_per_call():
    import time

    per_call = run_back_to_back(lambda: time.sleep(0.002), CpuClock(), repeats=5)
    assert 0.002 <= per_call < 0.5  # a sleep never ends early; a loaded machine may end it late
