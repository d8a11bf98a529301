"""Property: every entry point leaves any model exactly as it was (issue 10).

Hypothesis builds small models from a grammar of layers (conv, linear, norms with batch norm
in training mode, attention, a GRU, dropout, a buffer reassigned and one written in place, a
plain tensor attribute rewritten, a buffer registered during forward, shared weights, a lazy
layer), in mixed training modes with some layers frozen, and runs count (CPU, meta,
backward), benchmark (inference and training) and profile on each. After every call the
model must be bit-identical and identical in object identity (``model_fingerprint``), hold
no inference or meta tensor, leave torch's RNG where it was, and still train. Counts on meta
and on the CPU must agree wherever both run.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchprof_lab
from model_fingerprint import assert_untouched, fingerprint, train_step

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402

D, T, B = 8, 5, 3  # features, sequence length, batch
TINY = dict(min_time=0.0, min_runs=1, warmup=0, warmup_time=0.0)


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(D, D, 3, padding=1)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class BatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(D)

    def forward(self, x):
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(D, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(D, D, batch_first=True)

    def forward(self, x):
        return self.gru(x)[0]


class Counters(nn.Module):
    """A step counter reassigned and an EMA written in place, both buffers."""

    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("ema", torch.zeros(D))

    def forward(self, x):
        self.steps = self.steps + 1
        with torch.no_grad():
            self.ema.mul_(0.9).add_(x.detach().mean((0, 1)), alpha=0.1)
        return x + self.ema


class CachedTable(nn.Module):
    """A rotary-style table kept as a plain tensor attribute, rebuilt on every call."""

    def __init__(self):
        super().__init__()
        self.table = torch.zeros(1, D)

    def forward(self, x):
        positions = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)[:, None]
        self.table = torch.cos(positions / D).expand(-1, D)
        return x * self.table


class LateBuffer(nn.Module):
    """Registers a buffer the first time it runs."""

    def forward(self, x):
        if "late" not in dict(self.named_buffers(recurse=False)):
            self.register_buffer("late", x.detach().mean((0, 1)))
        return x - self.late


class Shared(nn.Module):
    """Uses a linear layer that another block owns too (tied weights)."""

    def __init__(self, shared: nn.Linear):
        super().__init__()
        self.tied = shared

    def forward(self, x):
        return self.tied(x)


KINDS = ("linear", "conv", "batchnorm", "layernorm", "attention", "gru", "dropout", "counters", "table",
         "late_buffer", "shared", "lazy", "gelu")


def block(kind: str, shared: nn.Linear) -> nn.Module:
    return {
        "linear": lambda: nn.Linear(D, D), "conv": Conv, "batchnorm": BatchNorm, "layernorm": lambda: nn.LayerNorm(D),
        "attention": Attention, "gru": Recurrent, "dropout": lambda: nn.Dropout(0.3), "counters": Counters,
        "table": CachedTable, "late_buffer": LateBuffer, "shared": lambda: Shared(shared),
        "lazy": lambda: nn.LazyLinear(D), "gelu": nn.GELU,
    }[kind]()


class Net(nn.Module):
    def __init__(self, kinds, evals, frozen):
        super().__init__()
        self.embed = nn.Linear(D, D)
        self.blocks = nn.ModuleList(block(kind, self.embed) for kind in kinds)
        self.head = nn.Linear(D, 2)
        self.train()
        for b, is_eval, is_frozen in zip(self.blocks, evals, frozen):
            if is_eval:
                b.eval()
            if is_frozen and not isinstance(b, nn.LazyLinear):  # an uninitialised parameter has no flag to set
                b.requires_grad_(False)

    def forward(self, x):
        x = self.embed(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def meta_count(model, x, **options):
    """The meta count, or None where meta cannot run the model (a data-dependent op)."""
    try:
        return torchprof_lab.count(model, inputs=x, device="meta", **options)
    except torchprof_lab.ForwardError:
        return None


ALL_AT_ONCE = list(KINDS)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6),
       evals=st.lists(st.booleans(), min_size=6, max_size=6),
       frozen=st.lists(st.booleans(), min_size=6, max_size=6))
@example(kinds=ALL_AT_ONCE, evals=[False] * 6, frozen=[False] * 6)
@example(kinds=["batchnorm", "lazy", "counters", "table"], evals=[False, True, False, True, False, False],
         frozen=[False, False, False, False, False, False])
def test_every_entry_point_leaves_any_model_as_it_was(kinds, evals, frozen):
    model = Net(kinds, evals + [False] * len(kinds), frozen + [False] * len(kinds))
    x = torch.randn(B, T, D)
    before = fingerprint(model)

    def check(what):
        try:
            assert_untouched(before, model)
        except AssertionError as exc:
            raise AssertionError(f"after {what} on blocks {kinds}:\n{exc}") from None

    cpu = torchprof_lab.count(model, inputs=x)
    check("count")
    meta = meta_count(model, x)
    check("count(device='meta')")
    if meta is not None and "attention" not in kinds:  # attention: see test_meta_and_cpu_agree_on_attention
        assert meta.flops == cpu.flops and meta.macs == cpu.macs, (kinds, meta.flops, cpu.flops)

    cpu_bwd = torchprof_lab.count(model, inputs=x, backward=True)
    check("count(backward=True)")
    assert cpu_bwd.backward_flops > 0
    meta_bwd = meta_count(model, x, backward=True)
    check("count(device='meta', backward=True)")
    if meta_bwd is not None and "attention" not in kinds:
        assert meta_bwd.flops == cpu_bwd.flops, kinds
        # GRU's backward is a different graph on meta (the input projection per time step, its
        # gradients summed: 4 more adds of a weight-gradient per 5 steps) than on the CPU (one
        # batched projection): each count is what its device path runs
        if "gru" not in kinds:
            assert meta_bwd.backward_flops == cpu_bwd.backward_flops, kinds

    assert torchprof_lab.benchmark(model, (T, D), [B], **TINY).rows[0].ok
    check("benchmark")
    assert torchprof_lab.benchmark(model, (T, D), [B], train=True, **TINY).rows[0].ok
    check("benchmark(train=True)")
    r = torchprof_lab.profile(model, inputs=x, hardware=False, **TINY)
    check("profile")
    if "late_buffer" not in kinds:  # profile counts the timed (steady-state) forward,
        assert r.flops == cpu.flops                    # after the first call registered the buffer

    train_step(model, x)  # still trains: no inference tensor saved for backward, nothing on meta


def test_meta_and_cpu_agree_on_attention():
    model = Net(["attention"], [False], [False])
    x = torch.randn(B, T, D)
    assert torchprof_lab.count(model, inputs=x, device="meta").flops == torchprof_lab.count(model, inputs=x).flops
