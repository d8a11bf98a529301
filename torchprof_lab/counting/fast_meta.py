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


def _dense(t) -> bool:
    """Contiguous in the default or the channels-last order: empty_like keeps its strides."""
    if t.is_contiguous():
        return True
    return (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)) or \
        (t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d))


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
    in fp32 for fp16/bf16 inputs (meta keeps them in eval too, as the decomposition does)."""
    x = args[0]
    if not (_floating_meta(x) and _dense(x) and x.dim() >= 2) or kwargs:
        return None
    stat = torch.float32 if x.dtype in _LOW else x.dtype
    channels = x.shape[1]
    return (torch.empty_like(x), torch.empty((channels,), dtype=stat, device=x.device),
            torch.empty((channels,), dtype=stat, device=x.device))


def _layer_norm(args, kwargs):
    """native_layer_norm: a contiguous output; mean and rstd over the leading dimensions with the
    normalized ones kept as 1, in fp32 for fp16/bf16 inputs."""
    x, normalized = args[0], args[1]
    if not _floating_meta(x) or kwargs or not 0 < len(normalized) <= x.dim():
        return None
    stat = torch.float32 if x.dtype in _LOW else x.dtype
    kept = tuple(x.shape[:x.dim() - len(normalized)]) + (1,) * len(normalized)
    return (torch.empty(x.shape, dtype=x.dtype, device=x.device), torch.empty(kept, dtype=stat, device=x.device),
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
