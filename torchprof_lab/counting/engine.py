"""One counting pass: forward (and optionally backward) under the counter, nothing left behind."""

from __future__ import annotations

import os
import threading
import traceback
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..errors import DataDependentError, ForwardError
from ..model_state import meta_twins, model_restored
from ..target_kernels import TargetKernels, calls
from ..torch_internals import tree_leaves
from .attribution import Accumulator, LayerTracker
from .dispatch import CountingMode, MetaValueRead
from .registry import formula_table
from . import formulas as _builtin  # noqa: F401  (importing it registers the built-in formulas)


@dataclass
class PassResult:
    """Raw per-module self costs from one pass, keyed by module (pre-order)."""

    accumulators: dict[nn.Module, Accumulator]
    uncounted: dict[str, int]
    backward_ran: bool
    notes: tuple[str, ...] = ()  # how meta stood in for the real device's kernels


def _describe_shapes(args) -> str:
    shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args]
    return str(shapes[0]) if len(shapes) == 1 else str(shapes)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _meta_value_read(exc: BaseException | None):
    """The MetaValueRead behind ``exc`` (itself, its cause or context), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MetaValueRead):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


# frames under these folders are not the model's code (the separator: torchvision is not torch)
_OURS = tuple(os.path.dirname(os.path.abspath(f)) + os.sep for f in (os.path.dirname(__file__), torch.__file__))


def _model_line(exc: BaseException) -> str:
    """'masking_utils.py:354 `padding_mask.all()`': the last frame of the model's own code (not
    torch's, not ours) on the way to ``exc``."""
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(frame.filename)
        if not path.startswith(_OURS):
            code = (frame.line or "").strip()
            found = f"{os.path.join(*path.split(os.sep)[-2:])}:{frame.lineno}" + (f" `{code[:80]}`" if code else "")
    return found


# A pass holds its model's lock, then this one: the counter's module hooks are process-wide,
# so a module two models share would be charged by both passes if two threads counted at once
# (the dispatch mode itself is per thread). Same order everywhere: model lock first.
_PASS_LOCK = threading.RLock()


def run_pass(model: nn.Module, args: tuple, kwargs: dict, *, meta: bool, backward: bool,
             train: bool, formulas: dict | None = None, cast: torch.dtype | None = None,
             attention: str | None = None) -> PassResult:
    """Count one forward (and backward if asked) of ``model(*args, **kwargs)``.

    On meta the model runs through ``functional_call`` with meta twins of its tensors (cast
    to ``cast`` if given). Inside ``model_restored``: afterwards the model is exactly as it was
    (same objects, same values, modes, RNG state), also when its forward raises; a model with
    unmaterialised lazy layers is run on a copy, and the result's modules are the copy's.
    Gradients come from ``torch.autograd.grad``, so no ``.grad`` is left on any parameter.
    ``formulas`` adds or overrides cost formulas for this pass. ``attention`` ("cpu" or "cuda"):
    on meta, ``scaled_dot_product_attention`` is counted as the kernel that device runs for the
    call (``target_kernels.TargetKernels``), not meta's own math path with its extra scaling ops.
    """
    if backward and torch.is_inference_mode_enabled():
        raise ValueError("backward=True cannot run inside torch.inference_mode(); count outside it")
    with model_restored(model, train, meta=meta, cast=cast) as run, _PASS_LOCK:
        work = run.module
        accumulators = {m: Accumulator(name, type(m).__name__) for name, m in run.modules}
        root = accumulators[work]
        tracker = LayerTracker(accumulators, root, track_backward=backward)
        counter = CountingMode(tracker, table=formula_table(formulas))
        kernels = TargetKernels(None, attention) if meta and attention else nullcontext()
        substitutes = meta_twins(work, cast) if meta and not run.copied else {}
        if run.copied:  # materialise the lazy layers first: initialising them is not the forward's work
            try:
                with torch.no_grad():
                    work(*args, **kwargs)
            except Exception as exc:
                raise ForwardError("", type(work).__name__, _describe_shapes(args), _first_line(exc)) from exc
        tracker.attach()
        try:
            grad_ctx = torch.enable_grad() if backward else torch.no_grad()
            try:
                with grad_ctx, kernels, counter:
                    if substitutes:
                        out = functional_call(work, substitutes, args, kwargs, strict=False, tie_weights=True)
                    else:
                        out = work(*args, **kwargs)
            except Exception as exc:
                layer, layer_args = tracker.failing_layer()
                read = _meta_value_read(exc)
                if read is not None:
                    raise DataDependentError(layer.name, layer.type, read.op, _model_line(read)) from exc
                raise ForwardError(layer.name, layer.type, _describe_shapes(layer_args or args),
                                   _first_line(exc)) from exc
            if backward:
                with kernels:
                    _count_backward(work, substitutes, out, (args, kwargs), counter)
        finally:
            tracker.detach()
    uncounted = {str(op): calls for op, calls in counter.uncounted.items()}
    return PassResult(accumulators, uncounted, backward, _attention_notes(kernels, attention))


def _attention_notes(kernels, attention: str | None) -> tuple[str, ...]:
    """What the report says of scaled_dot_product_attention counted on meta for ``attention``."""
    if not isinstance(kernels, TargetKernels):
        return ()
    device = "CUDA's memory-efficient" if attention == "cuda" else "the CPU's flash"
    notes = []
    if kernels.fused:
        notes.append(f"scaled_dot_product_attention ({calls(kernels.fused)}) counted on meta as {device} kernel, "
                     f"which a {attention.upper()} run takes")
    if kernels.target_math:
        notes.append(f"scaled_dot_product_attention ({calls(kernels.target_math)}: dropout, a value head size that "
                     f"differs, or other inputs torch's CPU choice sends there) counted on the math path, as a CPU "
                     f"run takes it")
    if kernels.unfused:
        notes.append(f"scaled_dot_product_attention ({calls(kernels.unfused)}: grouped heads, or not 4-D) counted "
                     f"on meta's math path; the {attention.upper()} run may fuse them (a few elementwise FLOPs "
                     f"fewer)")
    return tuple(notes)


def _count_backward(model: nn.Module, substitutes: dict, out, inputs, counter: CountingMode) -> None:
    """Backpropagate ones from every floating output into the trainable parameters (and into
    inputs that require grad). A ValueError when no output can be differentiated: a backward
    of nothing would read as 0 FLOPs."""
    outputs = [t for t in tree_leaves(out)
               if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    params = [substitutes.get(name, p) for name, p in model.named_parameters() if p.requires_grad]
    targets = params + [t for t in tree_leaves(inputs) if isinstance(t, torch.Tensor) and t.requires_grad]
    if not outputs or not targets:
        raise ValueError("backward=True, but the model's output has no floating-point tensor that requires grad: "
                         "nothing to backpropagate")
    seeds = [torch.ones_like(t) for t in outputs]
    counter.backward = True
    with counter:
        torch.autograd.grad(outputs, targets, seeds, allow_unused=True)
