"""Shared test fixtures; tests/ is put on sys.path so test folders import fake_pynvml, ddp_models and
model_builders (a helper module, not this file: tests/report has a conftest.py of its own)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
import pytest

pytest_plugins = ["pytester"]  # tests/test_pytest_plugin.py runs pytest sessions in-process


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _short_cpu_roofs():
    """Profiles in tests measure the CPU's roofs in 0.3 s, not 1 s: the tests read what the roofs
    mean (a matmul under the peak, a copy), not how precisely; tests of the measurement itself
    call hardware.cpu_roofs directly with their own budgets."""
    from torchprof_lab.hardware import ceiling

    real = ceiling.measure_cpu_ceilings
    ceiling.measure_cpu_ceilings = lambda threads=None, dtype="fp32", **kw: real(threads, dtype, **{"budget": 0.3, **kw})
    yield
    ceiling.measure_cpu_ceilings = real
