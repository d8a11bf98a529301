"""Every entry point refuses bad arguments with one line (ValueError or TypeError), before any
work and never as a raw torch error."""

import pytest
import torch
from torch import nn

import torchprof_lab

M = nn.Linear(4, 4)
CASES = {
    "count depth=-1": (lambda: torchprof_lab.count(M, (4,), depth=-1), "depth must be"),
    "count depth='2'": (lambda: torchprof_lab.count(M, (4,), depth="2"), "depth must be"),
    "count strict='yes'": (lambda: torchprof_lab.count(M, (4,), strict="yes"), "strict must be"),
    "count backward='no'": (lambda: torchprof_lab.count(M, (4,), backward="no"), "backward must be"),
    "count batch 0": (lambda: torchprof_lab.count(M, (4,), 0), "batch_size must be"),
    "count shape (4, 0)": (lambda: torchprof_lab.count(M, (4, 0)), "input_shape must be"),
    "count shape 4": (lambda: torchprof_lab.count(M, 4), "input_shape must be"),
    "count name=3": (lambda: torchprof_lab.count(M, (4,), name=3), "name must be"),
    "count formulas=[1]": (lambda: torchprof_lab.count(M, (4,), formulas=[1]), "formulas must be"),
    "count dtype=int8": (lambda: torchprof_lab.count(M, (4,), dtype="int8"), "unknown precision 'int8'"),
    "count not a model": (lambda: torchprof_lab.count(lambda x: x, (4,)), "torch.nn.Module"),
    "profile batch_sizes=4": (lambda: torchprof_lab.profile(M, (4,), batch_sizes=4), "batch_sizes must be"),
    "profile batch_sizes=[]": (lambda: torchprof_lab.profile(M, (4,), batch_sizes=[]), "batch_sizes must be"),
    "profile min_time=nan": (lambda: torchprof_lab.profile(M, (4,), min_time=float("nan")), "min_time must be"),
    "profile min_time=inf": (lambda: torchprof_lab.profile(M, (4,), min_time=float("inf")), "min_time must be"),
    "profile warmup='3'": (lambda: torchprof_lab.profile(M, (4,), warmup="3"), "warmup must be"),
    "profile bogus=1": (lambda: torchprof_lab.profile(M, (4,), bogus=1), "unknown timing option"),
    "profile hardware=1": (lambda: torchprof_lab.profile(M, (4,), hardware=1), "hardware must be"),
    "benchmark shape 'abc'": (lambda: torchprof_lab.benchmark(M, "abc"), "input_shape must be"),
    "benchmark batch_sizes=4": (lambda: torchprof_lab.benchmark(M, (4,), 4), "batch_sizes must be"),
    "benchmark threads=0": (lambda: torchprof_lab.benchmark(M, (4,), threads=0), "threads must be"),
    "benchmark dtype FP12": (lambda: torchprof_lab.benchmark(M, (4,), dtype="FP12"), "unknown precision"),
    "compare dtypes 'bf16x'": (lambda: torchprof_lab.compare_precision(M, (4,), dtypes="bf16x"), "unknown precision"),
    "compare batch 0": (lambda: torchprof_lab.compare_precision(M, (4,), 0), "batch_size must be"),
    "compare max_batches 0": (lambda: torchprof_lab.compare_precision(M, (4,), 2, max_batches=0), "max_batches"),
    "peak clock -5": (lambda: torchprof_lab.peak_flops("A100 SXM", "fp16", clock=-5), "clock must be"),
    "peak clock nan": (lambda: torchprof_lab.peak_flops("A100 SXM", "fp16", clock=float("nan")), "clock must be"),
    "peak clock True": (lambda: torchprof_lab.peak_flops("A100 SXM", "fp16", clock=True), "clock must be"),
    "peak dtype fp7": (lambda: torchprof_lab.peak_flops("A100 SXM", "fp7"), "unknown precision"),
    "device_info tpu": (lambda: torchprof_lab.device_info("tpu"), "unknown device"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_arguments_are_one_line(case):
    call, needle = CASES[case]
    with pytest.raises((ValueError, TypeError)) as raised:
        call()
    message = str(raised.value)
    assert needle in message and "\n" not in message


def test_precision_names_in_every_spelling():
    fp16 = torchprof_lab.peak_flops("A100 SXM", "fp16")
    for name in ("FP16", "float16", "half", torch.float16):
        assert torchprof_lab.peak_flops("A100 SXM", name) == fp16
