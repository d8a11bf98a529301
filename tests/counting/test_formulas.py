"""Closed-form cost formulas against hand counts, over many random shapes."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

import torchprof_lab

small = st.integers(1, 6)
SETTINGS = settings(max_examples=25, deadline=None)


def count(model, *inputs, **kw):
    return torchprof_lab.count(model, inputs=tuple(inputs), **kw)


@SETTINGS
@given(n=small, cin_g=small, cout_g=small, groups=st.integers(1, 3), k=st.integers(1, 3),
       size=st.integers(3, 9), stride=st.integers(1, 2), dims=st.sampled_from([1, 2, 3]), bias=st.booleans())
def test_conv_any_dims_and_groups(n, cin_g, cout_g, groups, k, size, stride, dims, bias):
    conv_cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    conv = conv_cls(cin_g * groups, cout_g * groups, k, stride=stride, groups=groups, bias=bias)
    x = torch.randn(n, cin_g * groups, *([size] * dims))
    r = count(conv, x, device="meta")
    out = (size - k) // stride + 1
    macs = n * cout_g * groups * out ** dims * cin_g * k ** dims
    assert r.macs == macs
    assert r.flops == 2 * macs + (n * cout_g * groups * out ** dims if bias else 0)


@SETTINGS
@given(n=small, cin_g=small, cout_g=small, groups=st.integers(1, 3), k=st.integers(1, 3), size=st.integers(2, 6))
def test_transposed_conv(n, cin_g, cout_g, groups, k, size):
    conv = nn.ConvTranspose2d(cin_g * groups, cout_g * groups, k, stride=2, groups=groups, bias=False)
    r = count(conv, torch.randn(n, cin_g * groups, size, size), device="meta")
    # every input element is multiplied into (cout/groups) x k x k outputs
    assert r.macs == n * cin_g * groups * size * size * cout_g * k * k


@SETTINGS
@given(batch=st.lists(small, max_size=2), m=small, k=small, n=small, bias=st.booleans())
def test_linear_any_leading_dims(batch, m, k, n, bias):
    lin = nn.Linear(k, n, bias=bias)
    r = count(lin, torch.randn(*batch, m, k))
    rows = m
    for b in batch:
        rows *= b
    assert r.macs == rows * k * n
    assert r.flops == 2 * rows * k * n + (rows * n if bias else 0)


class Functional(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


@SETTINGS
@given(b=small, m=st.integers(2, 6), k=st.integers(2, 6), n=st.integers(2, 6))
def test_matmul_and_einsum(b, m, k, n):
    # (einsum turns contractions over size-1 dims into elementwise products, so sizes start at 2)
    x, y = torch.randn(b, m, k), torch.randn(b, k, n)
    assert count(Functional(torch.matmul), x, y).macs == b * m * k * n
    assert count(Functional(lambda p, q: torch.einsum("bmk,bkn->bmn", p, q)), x, y).macs == b * m * k * n


@SETTINGS
@given(b=small, h=small, lq=st.integers(1, 9), lk=st.integers(1, 9), e=st.integers(1, 8), ev=st.integers(1, 8),
       device=st.sampled_from(["cpu", "meta"]), grad=st.booleans())
def test_sdpa_every_kernel(b, h, lq, lk, e, ev, device, grad):
    q, k, v = torch.randn(b, h, lq, e), torch.randn(b, h, lk, e), torch.randn(b, h, lk, ev)
    model = Functional(F.scaled_dot_product_attention)
    with torch.set_grad_enabled(grad):
        r = count(model, q, k, v, device=device)
    assert r.macs == b * h * lq * lk * (e + ev)
    assert not r.uncounted_ops


class Attend(nn.Module):
    """scaled_dot_product_attention with its flags fixed, so the inputs are tensors only."""

    def __init__(self, dropout=0.0, causal=False, gqa=False, scale=None):
        super().__init__()
        self.flags = dict(dropout_p=dropout, is_causal=causal, enable_gqa=gqa, scale=scale)

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **self.flags)


MASKS = {"none": None, "2-D": lambda b, h, lq, lk: (lq, lk), "key padding": lambda b, h, lq, lk: (b, 1, 1, lk),
         "full": lambda b, h, lq, lk: (b, h, lq, lk)}


@SETTINGS
@given(b=small, kv_heads=st.integers(1, 3), groups=st.integers(1, 2), lq=st.integers(1, 7), lk=st.integers(1, 7),
       e=st.integers(1, 8), ev=st.sampled_from([None, 3]), three_d=st.booleans(), mask=st.sampled_from(sorted(MASKS)),
       bool_mask=st.booleans(), causal=st.booleans(), dropout=st.booleans(), backward=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]), transposed=st.booleans(),
       scale=st.sampled_from([None, 0.3]))
def test_sdpa_on_meta_counts_what_the_cpu_runs(b, kv_heads, groups, lq, lk, e, ev, three_d, mask, bool_mask, causal,
                                                dropout, backward, dtype, transposed, scale):
    """A meta count follows the kernel the CPU takes (flash, or the math path for dropout and head sizes
    that differ), with the CPU's own preparation (3-D inputs, bool masks, grouped heads, strides of
    (B, L, H, E) tensors seen as (B, H, L, E)): every figure of the forward and the backward equals the CPU's."""
    h, ev = kv_heads * groups, ev or e
    three_d = three_d and not transposed

    def tensor(heads, length, dim):
        if three_d:
            return torch.randn(b * h, length, dim, dtype=dtype)
        if transposed:  # a projection's (B, L, H, E) output seen as (B, H, L, E): not contiguous
            return torch.randn(b, length, heads, dim, dtype=dtype).transpose(1, 2)
        return torch.randn(b, heads, length, dim, dtype=dtype)

    inputs = [tensor(h, lq, e), tensor(kv_heads, lk, e), tensor(kv_heads, lk, ev)]
    inputs = [t.requires_grad_(backward) for t in inputs]
    if MASKS[mask] is not None and not causal:
        shape = MASKS[mask](b, h, lq, lk) if not three_d else (lq, lk)
        inputs.append(torch.rand(shape) > 0.3 if bool_mask else torch.randn(shape, dtype=dtype))
    model = Attend(0.5 if dropout else 0.0, causal, gqa=groups > 1 and not three_d, scale=scale)
    train = dict(backward=True, train=dropout) if backward else dict(train=dropout)
    cpu, meta = count(model, *inputs, **train), count(model, *inputs, device="meta", **train)
    figures = lambda r: (r.macs, r.flops, r.backward_macs, r.backward_flops, r.uncounted_ops)  # noqa: E731
    assert figures(meta) == figures(cpu)
    fused = "counted on meta as the CPU's flash kernel" in " ".join(meta.notes)
    math = "counted on the math path, as a CPU run takes it" in " ".join(meta.notes)
    assert fused != math and (dropout or ev != e) <= math  # dropout and a value head of its own: the math path


def test_sdpa_inputs_the_cpu_refuses_are_refused_on_meta():
    """Following the CPU's kernel does not skip the checks its call makes first."""
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    for model, mask, message in ((Attend(), torch.randn(3, 5).half(), "attn_mask dtype"),
                                 (Attend(causal=True), torch.randn(3, 5), "is_causal")):
        for device in ("cpu", "meta"):
            with pytest.raises(Exception, match=message):
                count(model, q, k, v, mask, device=device)


def test_a_meta_count_follows_the_cpu_whatever_the_default_device(monkeypatch):
    """The CPU's kernel choice is asked of CPU stand-ins even where torch's default device is meta,
    and a model built on meta on a machine without CUDA follows the CPU (the count a user can check)."""
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    cpu = count(Attend(), q, k, v)
    with torch.device("meta"):
        assert count(Attend(), q, k, v, device="meta").flops == cpu.flops

    class Scaled(Attend):  # a weight, so that the model has a device of its own
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, q, k, v):
            return super().forward(q * self.w, k, v)

    built_on_meta = Scaled().to("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_meta = count(built_on_meta, q, k, v)
    assert on_meta.flops == count(Scaled(), q, k, v).flops and any("CPU's flash kernel" in n for n in on_meta.notes)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert any("CUDA's memory-efficient kernel, which a CUDA run takes" in n for n in count(built_on_meta, q, k, v).notes)


def test_sdpa_math_backend_matches_fused():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    with sdpa_kernel([SDPBackend.MATH]):
        math = count(Functional(F.scaled_dot_product_attention), q, k, v)
    fused = count(Functional(F.scaled_dot_product_attention), q, k, v)
    assert math.macs == fused.macs == 2 * 3 * 7 * 7 * 16


def test_native_multi_head_attention_fast_path_and_meta_agree():
    seen = []

    class Spy(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    mha = nn.MultiheadAttention(64, 4, batch_first=True).eval()
    x = torch.randn(2, 10, 64)
    with torch.no_grad(), Spy():
        mha(x, x, x)
    assert "aten._native_multi_head_attention.default" in seen  # the fast path really ran
    b, l, e = 2, 10, 64
    expected = b * l * e * 3 * e + 2 * b * l * l * e + b * l * e * e
    assert count(mha, x, x, x).macs == expected
    assert count(mha, x, x, x, device="meta").macs == expected
    with torch.inference_mode():
        assert count(mha, x, x, x).macs == expected


@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("mask", [None, "key padding", "attention"])
def test_multi_head_attention_fast_path_counts_what_meta_counts(need_weights, average, mask):
    """The fast path with the weights asked for (nn.MultiheadAttention's default) runs unfused: q
    rescaled beside its bias, a mask applied to each score, the weights averaged over the heads.
    The CPU's fast path and meta's math path count the same FLOPs, and without a mask the hand count."""
    b, l, e, h = 3, 7, 16, 4
    mha = nn.MultiheadAttention(e, h, batch_first=True).eval()
    masks = {"key padding": dict(key_padding_mask=torch.rand(b, l) > 0.8),
             "attention": dict(attn_mask=torch.rand(l, l) > 0.8)}.get(mask, {})

    class Call(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x, **given):
            return self.mha(x, x, x, need_weights=need_weights, average_attn_weights=average, **given)[0]

    x = torch.randn(b, l, e)
    cpu, meta = (torchprof_lab.count(Call(), inputs={"x": x, **masks}, device=d) for d in ("cpu", "meta"))
    assert (cpu.macs, cpu.flops) == (meta.macs, meta.flops)
    if mask is None:
        macs = b * (l * e * e * 3 + 2 * l * l * e + l * e * e)
        fused = 2 * macs + b * 4 * l * e + 5 * b * h * l * l  # 2 x MACs, four biases, softmax (5 per score)
        weights = (b * l * e + (b * h * l * l if average else 0)) if need_weights else 0
        assert (cpu.macs, cpu.flops) == (macs, fused + weights)


def test_transformer_encoder_fast_path():
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True).eval()
    x = torch.randn(2, 5, 32)
    expected = 2 * 5 * (4 * 32 * 32 + 2 * 5 * 32 + 2 * 32 * 64)
    assert count(layer, x).macs == expected
    assert count(layer, x, device="meta").macs == expected


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4))
def test_elementwise_one_flop_per_element(shape):
    x = torch.randn(*shape)
    numel = x.numel()
    for fn in (torch.relu, torch.sigmoid, F.gelu, F.silu, lambda t: t + t, lambda t: t * 2):
        r = count(Functional(fn), x)
        assert (r.macs, r.flops) == (0, numel)
        assert r.bytes == 2 * x.nbytes or r.bytes == 3 * x.nbytes  # inputs (1 or 2) + output


@SETTINGS
@given(n=small, c=small, hw=st.integers(2, 6))
def test_norms(n, c, hw):
    x = torch.randn(n, c, hw, hw)
    bn = nn.BatchNorm2d(c).eval()
    assert count(bn, x).flops == 4 * x.numel()
    assert count(nn.LayerNorm([hw, hw]), x).flops == 8 * x.numel()
    assert count(nn.GroupNorm(1, c), x).flops == 8 * x.numel()
    assert count(Functional(lambda t: torch.softmax(t, -1)), x).flops == 5 * x.numel()


@SETTINGS
@given(n=small, c=small, size=st.integers(4, 12), k=st.integers(1, 3))
def test_pooling(n, c, size, k):
    x = torch.randn(n, c, size, size)
    out = (size - k) // k + 1
    assert count(nn.MaxPool2d(k), x).flops == n * c * out * out * k * k
    assert count(nn.AvgPool2d(k), x).flops == n * c * out * out * k * k
    assert count(nn.AdaptiveAvgPool2d(1), x).flops == x.numel()


def test_views_move_no_bytes():
    r = count(Functional(lambda t: t.view(-1).t().unsqueeze(0).transpose(0, 1)), torch.randn(4, 5))
    assert (r.flops, r.bytes) == (0, 0)
    assert not r.uncounted_ops


@SETTINGS
@given(n=small, c=st.integers(2, 6), weighted=st.booleans())
def test_losses_by_hand(n, c, weighted):
    """cross-entropy = log_softmax (5 per element) + nll_loss (1 per target, 2 with class weights);
    MSE 3 per element; their backward passes likewise (tests/counting/test_formulas.py)."""
    x = torch.randn(n, c, requires_grad=True)
    target = torch.randint(0, c, (n,))
    weight = torch.rand(c) if weighted else None
    per_target = 2 if weighted else 1
    r = count(Functional(lambda t: F.cross_entropy(t, target, weight=weight)), x, backward=True)
    assert r.uncounted_ops == {} and r.macs == 0
    assert r.flops == 5 * n * c + per_target * n
    # nll_loss backward (per target) + log_softmax backward (4 per element)
    assert r.backward_flops == per_target * n + 4 * n * c
    y = torch.randn(n, c)
    r = count(Functional(lambda t: F.mse_loss(t, y)), x, backward=True)
    assert (r.flops, r.backward_flops, r.uncounted_ops) == (3 * n * c, 3 * n * c, {})
