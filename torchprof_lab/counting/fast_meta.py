"""Outputs of ops whose meta kernel is a slow Python decomposition, made directly.

On meta, torch computes the outputs of batch norm, layer norm and many activations by running a
Python reference implementation (torch's refs and prims) just to learn a shape: about 0.5 ms for a
batch norm and up to 1 ms for a hardswish, against microseconds for an op with a C++ meta kernel,
so they were most of the time of a meta count of a convolutional network. These functions make
the same outputs (shape, dtype, strides; an in-place op returns its input) from the rules the
decompositions follow; ``tests/counting/test_fast_meta.py`` holds each against torch's own meta
kernel. An input the rules do not cover (not dense, not floating) gets ``None``: run the kernel.
"""

from __future__ import annotations

import torch

aten = torch.ops.aten
_LOW = (torch.float16, torch.bfloat16)


def _strides(shape, order) -> tuple[int, ...]:
    """The strides of a dense tensor of ``shape`` laid out in ``order`` (innermost dimension last)."""
    strides, step = [0] * len(shape), 1
    for dim in reversed(order):
        strides[dim] = step
        step *= max(shape[dim], 1)
    return tuple(strides)


def _dense(t) -> bool:
    """Laid out exactly as a new contiguous or channels-last tensor of its shape (size-1 dimensions
    included: torch keeps their strides), so empty_like makes what torch's kernel makes."""
    shape, stride = tuple(t.shape), t.stride()
    orders = [tuple(range(t.dim()))]
    if t.dim() in (4, 5):
        orders.append((0, *range(2, t.dim()), 1))
    return any(stride == _strides(shape, order) for order in orders)


def _floating_meta(t) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "meta" and t.is_floating_point() and not t.is_nested


def _unary(args, kwargs):
    x = args[0] if args else None
    return torch.empty_like(x) if _floating_meta(x) and _dense(x) and not kwargs.get("out") else None


def _unary_(args, kwargs):
    x = args[0] if args else None
    return x if _floating_meta(x) and not kwargs.get("out") else None


def _batch_norm(args, kwargs):
    """native_batch_norm: the output like the input; mean and inverse std per channel (C,),
    in fp32 for fp16/bf16 inputs (meta keeps them in eval too, as the decomposition does).
    Arguments torch would refuse (a weight or statistics of another size, eval without running
    statistics) go to torch's kernel, which raises."""
    x = args[0]
    if not (_floating_meta(x) and _dense(x) and x.dim() >= 2) or kwargs or len(args) != 8:
        return None
    channels = x.shape[1]
    weight, bias, mean, var, training = args[1:6]
    if channels == 0 or any(t is not None and tuple(t.shape) != (channels,) for t in (weight, bias, mean, var)):
        return None
    if not training and (mean is None or var is None):
        return None
    stat = torch.float32 if x.dtype in _LOW else x.dtype
    return (torch.empty_like(x), torch.empty((channels,), dtype=stat, device=x.device),
            torch.empty((channels,), dtype=stat, device=x.device))


def _layer_norm(args, kwargs):
    """native_layer_norm: torch normalises ``input.contiguous()``, so the output is a new contiguous
    tensor, or like the input when that is already contiguous (a contiguous input whose size-1
    dimensions have odd strides goes to torch's kernel: empty_like would not copy them); mean and
    rstd over the leading dimensions with the normalized ones kept as 1, in fp32 for fp16/bf16
    inputs. A normalized shape, weight or bias that does not fit goes to torch's kernel, which
    raises. (ConvNeXt normalises a permuted, non-contiguous view.)"""
    if kwargs or len(args) != 5:
        return None
    x, normalized, weight, bias = args[0], tuple(args[1]), args[2], args[3]
    k = len(normalized)
    if not _floating_meta(x) or not 0 < k <= x.dim() or tuple(x.shape[-k:]) != normalized:
        return None
    if x.is_contiguous() and not _dense(x):
        return None
    if any(t is not None and tuple(t.shape) != normalized for t in (weight, bias)):
        return None
    stat = torch.float32 if x.dtype in _LOW else x.dtype
    kept = tuple(x.shape[:x.dim() - k]) + (1,) * k
    out = torch.empty_like(x) if x.is_contiguous() else torch.empty(x.shape, dtype=x.dtype, device=x.device)
    return (out, torch.empty(kept, dtype=stat, device=x.device),
            torch.empty(kept, dtype=stat, device=x.device))


_UNARY = ("gelu", "hardswish", "hardsigmoid", "hardtanh", "relu", "mish", "elu", "leaky_relu", "relu6")
FAST = {aten.native_batch_norm.default: _batch_norm, aten.native_layer_norm.default: _layer_norm}
for _name in _UNARY:
    _packet = getattr(aten, _name, None)
    if _packet is not None and "default" in _packet.overloads():
        FAST[_packet.default] = _unary
    _packet = getattr(aten, _name + "_", None)
    if _packet is not None and "default" in _packet.overloads():
        FAST[_packet.default] = _unary_


def run(func, args, kwargs):
    """``func(*args, **kwargs)``, its outputs made directly where the rules above cover them."""
    fast = FAST.get(func)
    if fast is not None:
        out = fast(args, kwargs)
        if out is not None:
            return out
    return func(*args, **kwargs)
