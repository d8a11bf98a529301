"""The pytest plugin: budgets checked by hand-computed figures, and the baseline across sessions.

A Linear(100, 10) has 100 x 10 + 10 = 1010 params and 100 x 10 = 1000 MACs per sample; its FLOPs
are 2 x 1000 + 10 bias adds = 2010. Its predicted inference peak on the CPU is every tensor alive
during the forward: weights and bias (1010 x 4 B), the input (100 x 4 B) and the output
(10 x 4 B) = 4480 B; for CUDA each of those four allocations is rounded up to 512 B: 5632 B.
"""

import dataclasses
import json

import pytest
import torch
from torch import nn

from torchprof_lab.pytest_plugin import ModelBudgets, ModelFigures, parse_tolerance

FAILED = pytest.fail.Exception


def budgets() -> ModelBudgets:
    """What the torchprof fixture gives a test, with no baseline in the session."""
    return ModelBudgets("test_x.py::test_model", None)


def failure(**check) -> str:
    with pytest.raises(FAILED) as caught:
        budgets().check(nn.Linear(100, 10), (100,), **check)
    return str(caught.value)


def test_budgets_met_pass_and_return_the_figures():
    figures = budgets().check(nn.Linear(100, 10), (100,), max_params=1010, max_macs=1000, max_flops=2010,
                              max_peak_memory=4480)
    assert figures == ModelFigures(name="Linear", batch_size=1, params=1010, macs=1000, flops=2010,
                                   peak_memory=4480, latency_ms=None)
    assert dataclasses.is_dataclass(ModelFigures) and ModelFigures.__dataclass_params__.frozen
    four = budgets().check(nn.Linear(100, 10), (100,), batch_size=4, name="batched")
    assert (four.name, four.batch_size, four.params, four.macs, four.peak_memory) == ("batched", 4, 1010, 4000, None)


def test_each_budget_exceeded_fails_with_one_line():
    assert failure(max_macs=900) == "torchprof: max_macs exceeded by Linear: 1 KMACs > 900 MACs (+11.1%)"
    # 1010 and 1009 both round to 1.01 K: shown exactly
    assert failure(max_params=1009) == "torchprof: max_params exceeded by Linear: 1,010 params > 1,009 params (+0.099%)"
    assert failure(max_flops=2000) == "torchprof: max_flops exceeded by Linear: 2.01 KFLOPs > 2 KFLOPs (+0.5%)"
    assert failure(max_peak_memory=4096) == "torchprof: max_peak_memory exceeded by Linear: 4.4 KiB > 4.0 KiB (+9.4%)"
    assert failure(max_params=1000, max_macs=900, name="net") == (
        "torchprof: 2 budgets exceeded by net: max_params 1.01 K params > 1 K params (+1.0%); "
        "max_macs 1 KMACs > 900 MACs (+11.1%)")


def test_peak_memory_follows_cuda_allocator_when_device_is_cuda():
    figures = budgets().check(nn.Linear(100, 10), (100,), max_peak_memory=10_000, device="cuda")
    assert figures.peak_memory == 4096 + 3 * 512  # 4000 B of weights take 8 blocks


def test_counting_leaves_the_model_where_it_was():
    model = nn.Sequential(nn.Linear(100, 10), nn.BatchNorm1d(10)).train()
    params = list(model.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    figures = budgets().check(model, (100,), batch_size=2, max_params=10_000, max_peak_memory=1e6,
                              max_latency_ms=1e4)
    assert figures.params == 1010 + 20 and figures.macs == 2000 and figures.latency_ms > 0
    assert [p is q for p, q in zip(model.parameters(), params)] == [True] * 4
    assert {p.device.type for p in model.parameters()} == {"cpu"} and model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_latency_budget_too_small_fails():
    line = failure(max_latency_ms=1e-6)
    assert line.startswith("torchprof: max_latency_ms exceeded by Linear: ") and " ms > 1e-06 ms (+" in line


@pytest.mark.parametrize("check, message", [
    ({"max_macs": -1}, "max_macs must be a finite number >= 0, got -1"),
    ({"max_params": True}, "max_params must be a finite number >= 0, got True"),
    ({"max_latency_ms": float("nan")}, "max_latency_ms must be a finite number >= 0, got nan"),
    ({"device": "tpu"}, "device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    ({"device": "meta"}, "device must be 'cpu', 'cuda' or 'cuda:N', got 'meta'"),
    ({"name": ""}, "name must be a non-empty string, got ''"),
])
def test_bad_arguments_are_one_line_value_errors(check, message):
    with pytest.raises(ValueError) as caught:
        budgets().check(nn.Linear(100, 10), (100,), **check)
    assert str(caught.value) == message


def test_a_model_checked_twice_in_a_test_needs_a_name():
    checker = budgets()
    checker.check(nn.Linear(100, 10), (100,))
    checker.check(nn.Linear(100, 10), (100,), name="second")
    with pytest.raises(ValueError, match="model 'Linear' was already checked in this test: pass name="):
        checker.check(nn.Linear(100, 10), (100,))


@pytest.mark.parametrize("text, fraction", [("1%", 0.01), ("0.01", 0.01), ("150%", 1.5), (" 0 ", 0.0)])
def test_tolerance_is_a_percent_or_a_fraction(text, fraction):
    assert parse_tolerance(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["1", "abc", "-1%", "inf%", "%"])
def test_a_bad_tolerance_is_refused(text):
    with pytest.raises(ValueError, match="^--torchprof-tolerance must be a percent such as 1% or a fraction"):
        parse_tolerance(text)


# ---------------------------------------------------------------------------------- sessions
@pytest.fixture(scope="module")
def warm():
    """One check in this process first: pytester drops the modules an in-process session imported,
    so without it each session would import again what the first count and memory pass import."""
    budgets().check(nn.Linear(2, 2), (2,), max_peak_memory=1e9, name="warm-up")
    import torchprof_lab.report.write  # noqa: F401 - what a session's end imports to save the baseline


def session(pytester, width: int, *args, batch: int = 1):
    """One in-process pytest session of a test checking a Linear(100, width) through the fixture
    (registered by the package's pytest11 entry point)."""
    pytester.makepyfile(test_model=f"""
        from torch import nn

        def test_model(torchprof):
            torchprof.check(nn.Linear(100, {width}), (100,), batch_size={batch})
    """)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)


def recorded(path) -> dict:
    return json.loads(path.read_text())


LINEAR_10 = {"params": 1010, "macs": 1000, "flops": 2010, "peak_memory": 4480, "batch_size": 1, "input_shape": [100]}


def test_the_baseline_records_then_fails_a_heavier_model(pytester, warm):
    path = pytester.path / "baseline.json"
    first = session(pytester, 10, "--torchprof-baseline", str(path))
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines([f"torchprof: baseline {path}: 1 model(s) recorded, 0 updated"])
    assert recorded(path) == {"format": "torchprof_lab.baseline/1",
                              "models": {"test_model.py::test_model": {"Linear": LINEAR_10}}}
    heavier = session(pytester, 20, "--torchprof-baseline", str(path))
    heavier.assert_outcomes(failed=1)
    heavier.stdout.fnmatch_lines(["torchprof: Linear grew beyond its baseline (tolerance 1%): "
                                  "params 1.01 K params -> 2.02 K params (+100%); macs 1 KMACs -> 2 KMACs (+100%); "
                                  "peak_memory 4.4 KiB -> 8.4 KiB (+91.1%)"])
    # Linear(100, 11): params and MACs +10%, peak memory (1111 + 100 + 11) x 4 B = 4888 B, +9.1%
    session(pytester, 11, "--torchprof-baseline", str(path), "--torchprof-tolerance", "15%").assert_outcomes(passed=1)
    session(pytester, 11, "--torchprof-baseline", str(path), "--torchprof-tolerance", "0.05").stdout.fnmatch_lines(
        ["*tolerance 5%): params 1.01 K params -> 1.11 K params (+10.0%); macs 1 KMACs -> 1.1 KMACs (+10.0%); "
         "peak_memory 4.4 KiB -> 4.8 KiB (+9.1%)"])
    other_batch = session(pytester, 10, "--torchprof-baseline", str(path), batch=2)
    other_batch.stdout.fnmatch_lines([f"torchprof: Linear is checked with batch 2 and input (100,) but its baseline in "
                                      f"{path} was recorded with batch 1 and input (100,): pass "
                                      f"--torchprof-update-baseline to record it again"])
    assert recorded(path)["models"]["test_model.py::test_model"]["Linear"] == LINEAR_10  # failures keep it


def test_a_lighter_model_passes_and_keeps_the_baseline_unless_updated(pytester, warm):
    path = pytester.path / "baseline.json"
    session(pytester, 10, "--torchprof-baseline", str(path)).assert_outcomes(passed=1)
    session(pytester, 5, "--torchprof-baseline", str(path)).assert_outcomes(passed=1)
    assert recorded(path)["models"]["test_model.py::test_model"]["Linear"] == LINEAR_10
    updated = session(pytester, 5, "--torchprof-baseline", str(path), "--torchprof-update-baseline")
    updated.assert_outcomes(passed=1)
    updated.stdout.fnmatch_lines([f"torchprof: baseline {path}: 0 model(s) recorded, 1 updated"])
    assert recorded(path)["models"]["test_model.py::test_model"]["Linear"] == {
        "params": 505, "macs": 500, "flops": 1005, "peak_memory": (505 + 100 + 5) * 4, "batch_size": 1,
        "input_shape": [100]}


@pytest.mark.parametrize("content, message", [
    ("{", "is not valid JSON (line 1: Expecting property name enclosed in double quotes): fix or delete it"),
    ('{"models": {}}', 'is not a torchprof_lab baseline (expected {"format": "torchprof_lab.baseline/1", '
                       '"models": {...}}): fix or delete it'),
    ('{"format": "torchprof_lab.baseline/1", "models": {"t.py::t": {"M": {"params": "x", "macs": 1, '
     '"batch_size": 1}}}}', "is corrupt: t.py::t model M: params is 'x', not a count: fix or delete it"),
])
def test_a_corrupt_baseline_is_one_usage_error(pytester, content, message):
    path = pytester.path / "baseline.json"
    path.write_text(content)
    result = session(pytester, 10, "--torchprof-baseline", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: torchprof baseline {path} {message}"
    assert path.read_text() == content


@pytest.mark.parametrize("args, message", [
    (["--torchprof-baseline", "missing/baseline.json"], "ERROR: torchprof baseline missing/baseline.json: folder "),
    (["--torchprof-baseline", "b.json", "--torchprof-tolerance", "1"],
     "ERROR: --torchprof-tolerance must be a percent such as 1% or a fraction below 1 such as 0.01, got '1'"),
    (["--torchprof-tolerance", "1%"], "ERROR: --torchprof-tolerance applies to a baseline: add --torchprof-baseline FILE"),
])
def test_bad_options_are_one_usage_error(pytester, args, message):
    result = session(pytester, 10, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0].startswith(message)


def test_the_baseline_under_an_xdist_worker_is_one_usage_error(pytester, monkeypatch, warm):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    path = pytester.path / "baseline.json"
    result = session(pytester, 10, "--torchprof-baseline", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == "ERROR: --torchprof-baseline records from one process: run it without -n"
    assert not path.exists()
    session(pytester, 10).assert_outcomes(passed=1)  # the budgets alone run in a worker
