"""One precision model: each timing row counts exactly the work it timed (regressions of
issue 9's wrong numbers: fp32 bytes on bf16 rows, TF32 turned off under a tf32 run, a bf16
model labelled fp32)."""

import pytest
import torch
from torch import nn

import torchprof_lab
from torchprof_lab.dtypes import PRECISIONS, label, precision
from torchprof_lab.timing.options import TimingOptions
from torchprof_lab.timing.prepare import backend_settings, plan

FAST = dict(min_time=0.02, min_runs=3, warmup=1, warmup_time=0.0)


def mlp():
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))


def test_bf16_rows_count_bf16_bytes():
    model = mlp()
    fp32 = torchprof_lab.count(model, (64,), 4)
    bf16 = torchprof_lab.count(model, (64,), 4, dtype="bf16")
    assert bf16.flops == fp32.flops and bf16.bytes * 2 == fp32.bytes  # every tensor in half the bytes
    r = torchprof_lab.profile(model, (64,), batch_sizes=[4], dtype="bf16", hardware=False, **FAST)
    row = r.timing.rows[0]
    assert row.bytes_per_batch == bf16.bytes and row.flops_per_batch == bf16.flops
    assert r.dtype == "bf16" and r.param_dtype == "fp32" and r.timing.dtype == "bf16"
    assert r.bytes == bf16.bytes  # the per-layer table describes the timed work too
    assert next(model.parameters()).dtype == torch.float32  # a cast copy was timed


def test_a_training_step_under_autocast_counts_what_autocast_runs():
    model = mlp()
    r = torchprof_lab.profile(model, (64,), batch_sizes=[4], dtype="bf16", train=True, hardware=False, **FAST)
    assert r.timing.autocast and r.dtype == "bf16" and r.param_dtype == "fp32"
    fp32 = torchprof_lab.profile(model, (64,), batch_sizes=[4], train=True, hardware=False, **FAST)
    assert r.timing.rows[0].flops_per_batch == fp32.timing.rows[0].flops_per_batch
    # autocast casts each weight to bf16 (extra copies) and runs the matmuls in bf16: other bytes
    assert r.timing.rows[0].bytes_per_batch != fp32.timing.rows[0].bytes_per_batch
    assert "autocast" in r.timing.to_table()


def test_each_batch_size_is_counted_on_the_real_device():
    class CannotRunOnMeta(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(x) * float(x.abs().sum().item() > 0)  # .item(): data, which meta has none of

    model = CannotRunOnMeta()
    r = torchprof_lab.profile(model, (8,), batch_sizes=[2, 6], hardware=False, **FAST)
    assert [row.flops_per_batch for row in r.timing.rows] == [torchprof_lab.count(model, (8,), b).flops
                                                             for b in (2, 6)]


def test_a_model_held_in_bf16_is_labelled_bf16():
    model = mlp().to(torch.bfloat16)
    b = torchprof_lab.benchmark(model, (64,), [2], **FAST)
    assert b.dtype == "bf16" and not b.autocast
    r = torchprof_lab.profile(model, (64,), batch_sizes=[2], hardware=False, **FAST)
    assert r.dtype == r.param_dtype == r.timing.dtype == "bf16"
    assert r.timing.rows[0].bytes_per_batch == torchprof_lab.count(model, (64,), 2).bytes


def test_tf32_keeps_tf32_math_on_while_timed():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        run = plan(mlp(), TimingOptions(dtype="tf32"), torch.device("cuda"))
        with backend_settings(run):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        run = plan(mlp(), TimingOptions(dtype="fp32"), torch.device("cuda"))
        torch.backends.cuda.matmul.allow_tf32 = True
        with backend_settings(run):
            assert not torch.backends.cuda.matmul.allow_tf32  # an fp32 row is fp32
        assert torch.backends.cuda.matmul.allow_tf32  # restored
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_compare_precision_times_each_variant_in_its_own_precision(monkeypatch):
    import torchprof_lab.precision_compare as module

    seen = []
    real = module.benchmark

    def spy(work, **kwargs):
        seen.append(kwargs["options"].dtype)
        return real(work, **kwargs)

    monkeypatch.setattr(module, "benchmark", spy)
    torchprof_lab.compare_precision(mlp(), (64,), 2, dtypes="BFloat16", max_batches=1, **FAST)
    assert seen == ["fp32", "bf16"]


@pytest.mark.parametrize("name", ["bf16", "bfloat16", "BF16", torch.bfloat16, " Bf16 "])
def test_one_table_of_precision_names(name):
    assert precision(name) is PRECISIONS["bf16"] and precision(name).bytes == 2
    assert TimingOptions(dtype=name).dtype == "bf16"


def test_precision_table_refuses_with_one_line():
    for bad in ("fp12", 3, None, "b f16"):
        with pytest.raises(ValueError, match="unknown precision"):
            precision(bad)
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        TimingOptions(dtype="int8")
    assert precision("float16").name == "fp16" and label(torch.float32) == "fp32" and label(torch.int64) == "int64"


def test_the_public_precision_function_is_the_table():
    from torchprof_lab import precision as imported

    assert torchprof_lab.precision("BF16") is PRECISIONS["bf16"] and imported is precision
    assert "precision" in torchprof_lab.__all__ and callable(torchprof_lab.precision)
