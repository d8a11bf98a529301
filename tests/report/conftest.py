"""One profiled report with every section of the HTML page, shared by the page's tests."""

import dataclasses

import pytest
from torch import nn

import torchprof_lab
from torchprof_lab.timing.result import BenchmarkRow

SCRIPT_NAME = "<script>alert(1)</script>"  # a layer name that must stay text in the page


def small_cnn() -> nn.Sequential:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    model.add_module(SCRIPT_NAME, nn.Identity())
    return model


@pytest.fixture(scope="session")
def html_profile():
    """A small CNN profiled at two batch sizes with per-layer timing, the hardware comparison and
    memory, plus an out-of-memory row at batch 64 (a CPU run never has one; a GPU sweep does)."""
    report = torchprof_lab.profile(small_cnn(), (3, 16, 16), batch_sizes=[1, 4], min_time=0.001, warmup=1,
                                   warmup_time=0, min_runs=3, per_layer=True, memory=True)
    timing = dataclasses.replace(report.timing, rows=(*report.timing.rows, BenchmarkRow(64, status="OOM")))
    return dataclasses.replace(report, timing=timing)
