"""Shared test helpers; tests/ is put on sys.path so test folders import fake_pynvml and ddp_models."""

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
import pytest

pytest_plugins = ["pytester"]  # tests/test_pytest_plugin.py runs pytest sessions in-process


def meta_model(builder, **kwargs):
    """Build a torchvision model without allocating weights (RegNet computes while building, so it
    builds on the CPU, its weight initialisation skipped: the counts do not read the values)."""
    try:
        with torch.device("meta"), _no_weight_init():  # init on meta computes nothing but costs Python calls
            return builder(**kwargs)
    except NotImplementedError:
        with _no_weight_init():
            return builder(**kwargs)


@contextlib.contextmanager
def _no_weight_init():
    """torch.nn.init's fills as no-ops for the block (regnet_y_128gf: 6.8 s of init to 0.1 s)."""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


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
