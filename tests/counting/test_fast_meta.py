"""The outputs fast_meta makes for ops whose meta kernel is a Python decomposition are exactly
torch's own meta kernel's: shape, dtype and strides (an in-place op returns its input)."""

import pytest
import torch

from torchprof_lab.counting import fast_meta

aten = torch.ops.aten


def _inputs():
    yield torch.empty(2, 8, 5, 5, device="meta")
    yield torch.empty(2, 8, 5, 5, device="meta").to(memory_format=torch.channels_last)
    yield torch.empty(2, 8, 3, 4, 5, device="meta").to(memory_format=torch.channels_last_3d)
    yield torch.empty(4, 8, device="meta", dtype=torch.bfloat16)
    yield torch.empty(3, 8, 6, device="meta", dtype=torch.float16)
    yield torch.empty(2, 8, 6, device="meta", dtype=torch.float64)
    yield torch.empty(2, 16, 6, device="meta")[:, ::2]  # not dense: torch's kernel runs
    yield torch.empty(2, 6, 5, 8, device="meta").permute(0, 3, 1, 2)  # dense in another order: torch's kernel
    yield torch.empty(2, 8, 5, 6, device="meta").permute(0, 2, 3, 1)  # ConvNeXt's LayerNorm input: an NHWC view
    yield torch.empty_strided((2, 1, 5), (5, 100, 1), device="meta")  # a size-1 dimension's odd stride kept
    yield torch.empty(2, 8, 1, 1, device="meta").to(memory_format=torch.channels_last)
    yield torch.empty(2, 1, 4, 4, device="meta").to(memory_format=torch.channels_last)


def _same(fast, real):
    fast = fast if isinstance(fast, tuple) else (fast,)
    real = real if isinstance(real, tuple) else (real,)
    assert [(tuple(t.shape), t.dtype, t.stride(), t.device) for t in fast] == \
        [(tuple(t.shape), t.dtype, t.stride(), t.device) for t in real]


@pytest.mark.parametrize("op", sorted((op for op in fast_meta.FAST if op._schema.name != "aten::native_layer_norm"
                                       and op._schema.name != "aten::native_batch_norm"), key=str), ids=str)
def test_activations_match_the_meta_kernel(op):
    for x in _inputs():
        out = fast_meta.run(op, (x,), {})
        if op._schema.name.endswith("_"):
            assert out is x  # in place: the input itself, as the kernel returns it
        else:
            _same(out, op(x))


def test_batch_norm_matches_the_meta_kernel_in_training_and_eval():
    for x in _inputs():
        c = x.shape[1]
        for training in (True, False):
            for affine in (True, False):
                w = torch.empty(c, device="meta", dtype=x.dtype) if affine else None
                stats = torch.empty(c, device="meta", dtype=x.dtype)
                args = (x, w, w, stats, stats, training, 0.1, 1e-5)
                _same(fast_meta.run(aten.native_batch_norm.default, args, {}), aten.native_batch_norm.default(*args))


def test_layer_norm_matches_the_meta_kernel():
    for x in _inputs():
        for k in range(1, x.dim() + 1):
            args = (x, list(x.shape[-k:]), None, None, 1e-5)
            _same(fast_meta.run(aten.native_layer_norm.default, args, {}), aten.native_layer_norm.default(*args))


def test_real_tensors_and_other_ops_run_torchs_kernel():
    x = torch.randn(4, 8)
    out = fast_meta.run(aten.gelu.default, (x,), {})
    assert torch.equal(out, torch.nn.functional.gelu(x))  # values: the CPU kernel ran
    assert fast_meta.run(aten.add.Tensor, (x, x), {}).equal(2 * x)
    ints = torch.empty(4, 8, device="meta", dtype=torch.int64)
    assert fast_meta.run(aten.relu.default, (ints,), {}).dtype == torch.int64  # not floating: torch's kernel


def test_arguments_torch_refuses_still_raise():
    """Shapes that do not fit go to torch's kernel, which raises as it would without the fast path."""
    x = torch.empty(2, 8, device="meta")
    with pytest.raises(RuntimeError):
        fast_meta.run(aten.native_layer_norm.default, (x, [5], None, None, 1e-5), {})
    with pytest.raises(RuntimeError):
        fast_meta.run(aten.native_layer_norm.default, (x, [8], torch.empty(5, device="meta"), None, 1e-5), {})
    wrong = torch.empty(5, device="meta")
    with pytest.raises(RuntimeError):
        fast_meta.run(aten.native_batch_norm.default, (x, wrong, None, None, None, True, 0.1, 1e-5), {})
    import torchprof_lab
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(5))
    with pytest.raises(torchprof_lab.ForwardError, match="normalized_shape"):
        torchprof_lab.count(model, (8,), device="meta")
