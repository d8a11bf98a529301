"""A meta step run as the target would run it: autocast, and the target's attention kernel.

torch.autocast leaves meta tensors alone, so a ``TorchFunctionMode`` above autograd does what
autocast's dispatch key does: the ops autocast runs in low precision (convolutions, linear,
matmuls, attention) get their floating arguments cast to fp16/bf16, the ops it runs in fp32
(softmax, layer/group norm, losses) get theirs cast up. The casts are ordinary differentiable
``.to`` calls, so autograd saves the low-precision copies as the real autocast does, and casts of a
parameter are cached for the step as autocast caches them.

On meta, ``scaled_dot_product_attention`` would take its math path (the attention probabilities
kept for backward, and a few scaling ops more); the same mode sends it to the kernel the target
runs instead: for a CPU, the one torch's own CPU choice picks for stand-ins of the same shapes.
Both the memory prediction and the meta count run under it, so they see what the device would.

A function that dispatches as one torch function is seen whole by the mode (modes are off inside
it). ``F.multi_head_attention_forward``, which ``nn.MultiheadAttention`` uses, calls the module
global ``F.scaled_dot_product_attention``: while the mode runs, that global is a function that
sends calls made inside a whole-seen function to the same fused kernel. Limit: the other ops inside
such a function (its projections) run in the precision of its arguments, not autocast's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode

from .torch_internals import (SDPA, dispatch_modes_off, efficient_attention, flash_attention_cpu, functional_attention,
                              fused_sdp_choice)

LOW = {F.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm,
       torch.bmm, torch.Tensor.bmm, torch.addmm, torch.baddbmm, torch.conv1d, torch.conv2d, torch.conv3d,
       torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d, SDPA,
       torch.prelu}
FP32 = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, torch.Tensor.softmax, torch.Tensor.log_softmax,
        F.layer_norm, torch.layer_norm, F.group_norm, torch.group_norm, F.cross_entropy, F.nll_loss, F.mse_loss,
        F.binary_cross_entropy_with_logits}


def _cpu_stand_in(t):
    """A CPU tensor with ``t``'s shape, dtype and last-dim stride that holds one row (every other
    stride 0): what torch's CPU kernel choice reads, without the memory of ``t``."""
    if not isinstance(t, torch.Tensor):
        return t
    if t.dim() == 0:
        return torch.empty((), dtype=t.dtype, device="cpu")
    last = t.stride(-1)
    row = torch.empty(max(0, (t.shape[-1] - 1) * last + 1), dtype=t.dtype, device="cpu")  # whatever the default
    return row.as_strided(t.shape, (0,) * (t.dim() - 1) + (last,)).requires_grad_(t.requires_grad
                                                                                  and t.is_floating_point())


def calls(n: int) -> str:
    """'1 call', '4 calls': how the notes on these choices count them."""
    return f"{n} call{'s' if n != 1 else ''}"


class TargetKernels(TorchFunctionMode):
    """A meta step as the target would run it: autocast to ``dtype`` (None: no autocast), and
    ``scaled_dot_product_attention`` through the target's kernel (``attention``: "cuda" runs
    memory-efficient attention, which keeps the output and the log-sum-exp as flash attention
    does; "cpu" the kernel torch's CPU choice picks, flash or the math path; None: as torch picks
    on meta, the math path). ``clear()`` ends the step's cache of weight casts."""

    def __init__(self, dtype: torch.dtype | None, attention: str | None = None):
        super().__init__()
        self.dtype = dtype
        self.attention = attention
        self.cache: dict[int, torch.Tensor] = {}
        self.fused = 0  # attention calls sent to the fused kernel
        self.unfused = 0  # calls left on the math path that CUDA may fuse (GQA, not 4-D): not followed
        self.target_math = 0  # calls the CPU target itself runs on the math path (its own choice)
        self.inside = 0  # > 0 while a function the mode handles whole runs

    def _attention_global(self, replaced, *args, **kwargs):
        """F.scaled_dot_product_attention while the mode runs: a call the mode cannot see (inside a
        function it handles whole) goes to the target's kernel; any other to the global it replaced."""
        if self.inside:
            return self.attend(args, kwargs)
        return replaced(*args, **kwargs)

    def __enter__(self):
        if self.attention is not None:
            functional_attention.install(self._attention_global)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            if self.attention is not None:
                functional_attention.uninstall(self._attention_global)

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
        """The fused kernel's output; None where the target runs the math path for these arguments
        (the CPU's choice: counted in ``target_math``) or where it cannot be followed (``unfused``).
        Arguments the device would refuse raise its error first: the kernels below check less."""
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        given = {**dict(zip(names, args)), **kwargs}
        with dispatch_modes_off(), torch.no_grad():  # shapes only on meta: nothing runs, nothing is seen
            SDPA(*args, **kwargs)
        q, k, v = given.get("query"), given.get("key"), given.get("value")
        mask, dropout = given.get("attn_mask"), given.get("dropout_p", 0.0)
        causal, scale = given.get("is_causal", False), given.get("scale")
        if self.attention == "cpu" and all(isinstance(t, torch.Tensor) for t in (q, k, v)):
            return self._cpu_attention(q, k, v, mask, dropout, causal, scale, bool(given.get("enable_gqa")))
        if (not all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in (q, k, v))
                or given.get("enable_gqa") or q.shape[1] != k.shape[1] or not q.is_floating_point()):
            self.unfused += 1
            return None
        bias = None
        if mask is not None:  # CUDA's memory-efficient kernel takes the mask as an additive bias
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
            bias = mask.to(q.dtype).expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        grad = q.requires_grad or k.requires_grad or v.requires_grad
        return efficient_attention(q, k, v, bias, grad, float(dropout), causal, scale=scale)[0]

    def _cpu_attention(self, q, k, v, mask, dropout, causal, scale, gqa):
        """The CPU's flash kernel where torch's own CPU choice (asked with stand-ins of the same
        shapes, dtypes and last-dim strides) takes it, prepared as the CPU's call prepares it (3-D
        inputs unsqueezed, a bool mask made additive); None where the CPU runs the math path
        (dropout, a value head size that differs, ...), counted in ``target_math``."""
        with dispatch_modes_off():  # the profiler's own question: no counter or tracker sees it
            stand = [_cpu_stand_in(t) for t in (q, k, v, mask)]
            choice = fused_sdp_choice(*stand[:3], attn_mask=stand[3], dropout_p=float(dropout),
                                      is_causal=bool(causal), scale=scale, enable_gqa=gqa)
        if choice != int(SDPBackend.FLASH_ATTENTION):
            self.target_math += 1
            return None
        three_d = q.dim() == 3
        if three_d:
            q, k, v = (t.unsqueeze(0) for t in (q, k, v))
        if mask is not None and mask.dtype == torch.bool:
            zero, minus_inf = (torch.scalar_tensor(x, dtype=q.dtype, device=q.device) for x in (0.0, float("-inf")))
            mask = torch.where(mask, zero, minus_inf)
        out = flash_attention_cpu(q, k, v, 0.0, causal, attn_mask=mask, scale=scale)[0]
        return out.squeeze(0) if three_d else out

    def attend(self, args, kwargs):
        """scaled_dot_product_attention as the target runs it: its fused kernel where it has one."""
        out = self._fused_attention(args, kwargs)
        if out is not None:
            self.fused += 1
            return out
        return SDPA(*args, **kwargs)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.dtype is not None and (func in LOW or func in FP32):
            dtype = self.dtype if func in LOW else torch.float32
            args = tuple(self._cast(a, dtype) for a in args)
            kwargs = {k: self._cast(v, dtype) for k, v in kwargs.items()}
        if func is SDPA and self.attention is not None:
            return self.attend(args, kwargs)
        self.inside += 1
        try:
            return func(*args, **kwargs)
        finally:
            self.inside -= 1
