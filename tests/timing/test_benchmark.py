"""Timing measured for real on the CPU with small models."""

import copy
import os

import pytest
import torch
from torch import nn

import torchprof_lab
from torchprof_lab.timing.benchmark import is_out_of_memory

FAST = dict(min_time=0.05, min_runs=5, warmup=1, warmup_time=0.0)


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))


def test_rows_for_each_batch_size_with_consistent_statistics():
    b = torchprof_lab.benchmark(small_cnn(), (3, 16, 16), [1, 4, 16], **FAST)
    assert [r.batch_size for r in b.rows] == [1, 4, 16]
    for row in b.rows:
        lat = row.latency
        assert row.ok and lat.n >= 5 and 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
        assert row.samples_per_s == pytest.approx(row.batch_size / lat.p50)
        assert row.batches_per_s == pytest.approx(1 / lat.p50)
        assert row.throughput_samples_per_s > 0
    assert b.mode == "inference" and "perf_counter" in b.clock
    assert b.environment["intra_op_threads"] >= 1


def test_profile_joins_counts_and_achieved_flops():
    model = small_cnn()
    r = torchprof_lab.profile(model, (3, 16, 16), batch_sizes=[2, 8], **FAST)
    assert r.batch_size == 2 and r.timing is not None
    row2, row8 = r.timing.row(2), r.timing.row(8)
    assert row2.flops_per_batch == r.flops
    assert row8.flops_per_batch == torchprof_lab.count(model, (3, 16, 16), 8).flops
    assert row8.achieved_flops == pytest.approx(row8.flops_per_batch / row8.latency.p50)
    data = r.to_dict()
    assert data["timing"]["rows"][1]["batch_size"] == 8 and len(data["timing"]["rows"][0]["latency_s"]["samples"]) >= 5
    assert "p50 ms" in str(r) and "Achieved FLOP/s" in r.to_markdown()


def test_meta_model_is_counted_not_timed():
    r = torchprof_lab.profile(nn.Linear(4, 4), (4,), device="meta")
    assert r.timing is None
    with pytest.raises(ValueError, match="meta"):
        torchprof_lab.benchmark(nn.Linear(4, 4).to("meta"), (4,))


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_state_equal(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_benchmark_leaves_caller_state_bit_identical():
    model = small_cnn()
    model[1].eval()  # mixed flags come back as they were
    before, flags = state(model), [m.training for m in model.modules()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_before = copy.deepcopy(optimizer.state_dict())
    r = torchprof_lab.profile(model, (3, 16, 16), batch_sizes=[4], train=True, **FAST)
    row = r.timing.rows[0]
    assert r.timing.mode == "train" and row.ok
    assert row.flops_per_batch == r.total_flops > r.flops  # forward + backward
    assert_state_equal(before, state(model))
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert optimizer.state_dict() == opt_before


def test_inference_benchmark_restores_mode_and_buffers():
    model = small_cnn().train()
    before = state(model)
    torchprof_lab.benchmark(model, (3, 16, 16), [2], **FAST)
    assert model.training and all(m.training for m in model.modules())
    assert_state_equal(before, state(model))


def test_inference_runs_in_eval_under_inference_mode():
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["training"], seen["inference"] = self.training, torch.is_inference_mode_enabled()
            return x * 2

    torchprof_lab.benchmark(Probe().train(), (3,), [1], **FAST)
    assert seen == {"training": False, "inference": True}


class OutOfMemoryAbove(nn.Module):
    """Raises the allocator's out-of-memory error for batches larger than ``limit``."""

    def __init__(self, limit, error=MemoryError):
        super().__init__()
        self.limit, self.error = limit, error
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise self.error("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")
        return self.lin(x)


@pytest.mark.parametrize("error", [MemoryError, RuntimeError])
def test_out_of_memory_becomes_a_row_and_sweep_stops(error):
    b = torchprof_lab.benchmark(OutOfMemoryAbove(8, error), (4,), sweep=True, **FAST)
    assert [(r.batch_size, r.status) for r in b.rows] == [(1, "ok"), (2, "ok"), (4, "ok"), (8, "ok"), (16, "OOM")]
    assert b.rows[-1].samples_per_s is None and "OOM" in str(b)


def test_listed_sizes_go_on_after_an_oom_row_and_max_batch_is_found():
    b = torchprof_lab.benchmark(OutOfMemoryAbove(11), (4,), [4, 16, 2], max_batch=True, **FAST)
    assert [r.status for r in b.rows] == ["ok", "OOM", "ok"]
    assert b.max_batch == 11 and b.max_batch_bounded and "Largest batch that fits: 11\n" in str(b) + "\n"
    assert b.to_dict()["max_batch_bounded"] is True


def test_max_batch_searches_below_when_no_size_fits_and_says_none_when_batch_1_does_not():
    quick = dict(FAST, min_time=0.005, min_runs=3)
    b = torchprof_lab.benchmark(OutOfMemoryAbove(5), (4,), [8, 16], max_batch=True, **quick)
    assert [r.status for r in b.rows] == ["OOM", "OOM"] and b.max_batch == 5 and b.max_batch_bounded
    assert "Largest batch that fits: 5\n" in str(b) + "\n"
    none = torchprof_lab.benchmark(OutOfMemoryAbove(0), (4,), [2], max_batch=True, **quick)
    assert none.max_batch == 0 and "Largest batch that fits: none (batch 1 runs out of memory)" in str(none)
    below = torchprof_lab.benchmark(OutOfMemoryAbove(3), (4,), [4, 2], max_batch=True, **quick)  # an OOM below
    assert below.max_batch == 3 and below.max_batch_bounded  # the search runs between 2 and 4


def test_a_sweep_with_batch_sizes_is_refused():
    with pytest.raises(ValueError, match=r"the batch size\(s\) given \(3, 5\) would not be timed: give batch sizes "
                                         r"or sweep"):
        torchprof_lab.benchmark(nn.Linear(4, 4), (4,), [3, 5], sweep=True, **FAST)
    with pytest.raises(ValueError, match=r"the batch size\(s\) given \(4\) would not be timed"):  # batch_size=4
        torchprof_lab.profile(nn.Linear(4, 4), (4,), 4, sweep=True, **FAST)


def test_max_batch_without_a_failure_is_only_a_lower_bound_and_says_so():
    """Nothing tried ran out of memory: the largest batch tried is not called the largest that fits."""
    b = torchprof_lab.benchmark(OutOfMemoryAbove(100), (4,), [1, 8], max_batch=True, **FAST)
    assert b.max_batch == 8 and not b.max_batch_bounded and b.max_batch_text == "≥ 8"
    assert "Largest batch that fits: ≥ 8 (the largest tried; none larger ran out of memory)" in str(b)
    assert b.to_dict()["max_batch_bounded"] is False and "fits: ≥ 8" in b.to_html()
    assert torchprof_lab.benchmark(OutOfMemoryAbove(100), (4,), [2], **FAST).to_dict()["max_batch_bounded"] is None


def test_other_errors_are_not_swallowed_and_the_model_is_restored():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(3)

        def forward(self, x):
            self.bn(x)  # updates running stats in train mode, then fails
            raise ValueError("a real bug")

    for per_layer, train in ((False, False), (True, False), (False, True)):
        model = Broken().train()
        before = copy.deepcopy(model.state_dict())
        hooks = (dict(torch.nn.modules.module._global_forward_hooks),
                 dict(torch.nn.modules.module._global_forward_pre_hooks))
        with pytest.raises(ValueError, match="a real bug"):
            torchprof_lab.benchmark(model, (3,), [2], per_layer=per_layer, train=train, **FAST)
        assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
        assert hooks == (dict(torch.nn.modules.module._global_forward_hooks),
                         dict(torch.nn.modules.module._global_forward_pre_hooks))


def test_is_out_of_memory():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_sweep_respects_time_budget():
    b = torchprof_lab.benchmark(nn.Linear(4, 4), (4,), sweep=True, sweep_budget=0.0, **FAST)
    assert len(b.rows) == 1


def test_threads_fixed_for_the_run_and_restored():
    before = torch.get_num_threads()
    b = torchprof_lab.benchmark(nn.Linear(4, 4), (4,), [1], threads=1, **FAST)
    assert b.environment["intra_op_threads"] == 1 and torch.get_num_threads() == before


def test_per_layer_latency_beside_counts():
    r = torchprof_lab.profile(small_cnn(), (3, 32, 32), batch_sizes=[2], per_layer=True, **FAST)
    conv = r.layer("0")
    assert conv.latency is not None and conv.latency > 0 and conv.macs > 0
    assert r.model_record.latency >= max(layer.latency for layer in r.layers)
    assert "Latency ms" in str(r) and "Per-layer pass" in str(r)


@pytest.mark.parametrize("options", [{"dtype": "bf16"}, {"channels_last": True}, {"dtype": "bf16", "train": True}])
def test_precision_and_layout_options_time_a_copy(options):
    model = small_cnn()
    before = state(model)
    b = torchprof_lab.benchmark(model, (3, 16, 16), [2], **options, **FAST)
    assert b.rows[0].ok and b.dtype == options.get("dtype", "fp32")
    assert_state_equal(before, state(model))
    assert next(model.parameters()).dtype == torch.float32


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match="dtype"):
        torchprof_lab.benchmark(nn.Linear(2, 2), (2,), dtype="fp8")
    with pytest.raises(ValueError, match="tf32"):
        torchprof_lab.benchmark(nn.Linear(2, 2), (2,), dtype="tf32")
    with pytest.raises(ValueError, match="batch sizes"):
        torchprof_lab.benchmark(nn.Linear(2, 2), (2,), [0])
    with pytest.raises(ValueError, match="input_shape"):
        torchprof_lab.benchmark(nn.Linear(2, 2))


def test_compile_on_cpu():
    from torch._dynamo.utils import counters

    counters.clear()
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    b = torchprof_lab.benchmark(model, (8,), [2], compile=True, **FAST)
    assert b.rows[0].ok and b.settings["compile"] is True
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo really captured and compiled a graph
    assert not hasattr(model, "_orig_mod") and type(model) is nn.Sequential


def test_more_threads_than_cpus_is_said():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    said = f"{cpus + 2} threads on {cpus} logical CPUs: the threads take turns"
    over = torchprof_lab.benchmark(nn.Linear(8, 8), (8,), [1], threads=cpus + 2, **FAST)
    assert over.environment["logical_cpus"] == cpus and said in str(over)
    assert "logical CPUs: the threads take turns" not in str(torchprof_lab.benchmark(nn.Linear(8, 8), (8,), [1],
                                                                                      threads=1, **FAST))
