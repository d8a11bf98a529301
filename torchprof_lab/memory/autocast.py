"""A meta step run as the target would run it: autocast, and the target's attention kernel.

torch.autocast leaves meta tensors alone, so a ``TorchFunctionMode`` above autograd does what
autocast's dispatch key does: the ops autocast runs in low precision (convolutions, linear,
matmuls, attention) get their floating arguments cast to fp16/bf16, the ops it runs in fp32
(softmax, layer/group norm, losses) get theirs cast up. The casts are ordinary differentiable
``.to`` calls, so autograd saves the low-precision copies as the real autocast does, and casts of a
parameter are cached for the step as autocast caches them.

On meta, ``scaled_dot_product_attention`` would take its math path (the attention probabilities
kept for backward); the same mode sends it to the fused kernel the target runs instead.

Limit: a function that dispatches as one torch function and calls these ops inside it
(``F.multi_head_attention_forward``, which ``nn.MultiheadAttention`` uses) is seen whole: the ops
inside it run in the precision of its arguments and attention on the math path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..torch_internals import efficient_attention, flash_attention_cpu

LOW = {F.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm,
       torch.bmm, torch.Tensor.bmm, torch.addmm, torch.baddbmm, torch.conv1d, torch.conv2d, torch.conv3d,
       torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d, F.scaled_dot_product_attention,
       torch.prelu}
FP32 = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, torch.Tensor.softmax, torch.Tensor.log_softmax,
        F.layer_norm, torch.layer_norm, F.group_norm, torch.group_norm, F.cross_entropy, F.nll_loss, F.mse_loss,
        F.binary_cross_entropy_with_logits}


class TargetKernels(TorchFunctionMode):
    """A meta step as the target would run it: autocast to ``dtype`` (None: no autocast), and
    ``scaled_dot_product_attention`` through the target's fused kernel (``attention``: "cuda" runs
    memory-efficient attention, which keeps the output and the log-sum-exp as flash attention
    does; "cpu" the CPU flash kernel; None: as torch picks on meta, the math path).
    ``clear()`` ends the step's cache of weight casts."""

    def __init__(self, dtype: torch.dtype | None, attention: str | None = None):
        super().__init__()
        self.dtype = dtype
        self.attention = attention
        self.cache: dict[int, torch.Tensor] = {}
        self.fused = 0  # attention calls sent to the fused kernel
        self.unfused = 0  # attention calls left on the math path (a mask on CUDA, dropout, GQA)

    def clear(self) -> None:
        self.cache.clear()

    def _cast(self, value, dtype):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
            if dtype != torch.float32 and value.is_leaf and value.requires_grad:  # a weight: cast once per step
                cached = self.cache.get(id(value))
                if cached is None:
                    cached = self.cache[id(value)] = value.to(dtype)
                return cached
            return value.to(dtype)
        if isinstance(value, (list, tuple)):
            return type(value)(self._cast(v, dtype) for v in value)
        return value

    def _fused_attention(self, args, kwargs):
        """The fused kernel's output, or None where the target would not run one for these arguments."""
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        given = {**dict(zip(names, args)), **kwargs}
        q, k, v = given.get("query"), given.get("key"), given.get("value")
        mask, dropout = given.get("attn_mask"), given.get("dropout_p", 0.0)
        causal, scale = given.get("is_causal", False), given.get("scale")
        if (not all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in (q, k, v)) or dropout
                or given.get("enable_gqa") or q.shape[1] != k.shape[1] or not q.is_floating_point()):
            return None
        if self.attention == "cpu":
            return flash_attention_cpu(q, k, v, 0.0, causal, attn_mask=mask, scale=scale)[0]
        if mask is not None:  # the CUDA kernels take an additive bias: left to the math path
            return None
        return efficient_attention(
            q, k, v, None, q.requires_grad or k.requires_grad or v.requires_grad, 0.0, causal, scale=scale)[0]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.dtype is not None and (func in LOW or func in FP32):
            dtype = self.dtype if func in LOW else torch.float32
            args = tuple(self._cast(a, dtype) for a in args)
            kwargs = {k: self._cast(v, dtype) for k, v in kwargs.items()}
        if func is F.scaled_dot_product_attention and self.attention is not None:
            out = self._fused_attention(args, kwargs)
            if out is not None:
                self.fused += 1
                return out
            self.unfused += 1
        return func(*args, **kwargs)
