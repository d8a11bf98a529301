"""One counting pass: forward (and optionally backward) under the counter, nothing left behind."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..errors import ForwardError
from ..model_state import buffers_restored, meta_twins, mode_restored
from ..torch_internals import tree_leaves
from .attribution import Accumulator, LayerTracker
from .dispatch import CountingMode
from .registry import formula_table
from . import formulas as _builtin  # noqa: F401  (importing it registers the built-in formulas)


@dataclass
class PassResult:
    """Raw per-module self costs from one pass, keyed by module (pre-order)."""

    accumulators: dict[nn.Module, Accumulator]
    uncounted: dict[str, int]
    backward_ran: bool


def _describe_shapes(args) -> str:
    shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args]
    return str(shapes[0]) if len(shapes) == 1 else str(shapes)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_pass(model: nn.Module, args: tuple, kwargs: dict, *, meta: bool, backward: bool,
             train: bool, formulas: dict | None = None, cast: torch.dtype | None = None) -> PassResult:
    """Count one forward (and backward if asked) of ``model(*args, **kwargs)``.

    On meta the model runs through ``functional_call`` with meta twins of its tensors (cast
    to ``cast`` if given); on a real device buffers written in place are restored afterwards.
    Gradients come from ``torch.autograd.grad``, so no ``.grad`` is left on any parameter.
    ``formulas`` adds or overrides cost formulas for this pass.
    """
    if backward and torch.is_inference_mode_enabled():
        raise ValueError("backward=True cannot run inside torch.inference_mode(); count outside it")
    accumulators = {m: Accumulator(name, type(m).__name__) for name, m in model.named_modules()}
    root = accumulators[model]
    tracker = LayerTracker(accumulators, root, track_backward=backward)
    counter = CountingMode(tracker, table=formula_table(formulas))
    modules = list(accumulators)
    with mode_restored(model, train, modules), buffers_restored(model, modules):
        substitutes = meta_twins(model, cast) if meta else {}
        tracker.attach()
        try:
            grad_ctx = torch.enable_grad() if backward else torch.no_grad()
            try:
                with grad_ctx, counter:
                    if substitutes:
                        out = functional_call(model, substitutes, args, kwargs, strict=False, tie_weights=True)
                    else:
                        out = model(*args, **kwargs)
            except Exception as exc:
                layer, layer_args = tracker.failing_layer()
                raise ForwardError(layer.name, layer.type, _describe_shapes(layer_args or args),
                                   _first_line(exc)) from exc
            if backward:
                _count_backward(model, substitutes, out, counter)
        finally:
            tracker.detach()
    uncounted = {str(op): calls for op, calls in counter.uncounted.items()}
    return PassResult(accumulators, uncounted, backward)


def _count_backward(model: nn.Module, substitutes: dict, out, counter: CountingMode) -> None:
    """Backpropagate ones from every floating output into the trainable parameters."""
    params = [substitutes.get(name, p) for name, p in model.named_parameters() if p.requires_grad]
    outputs = [t for t in tree_leaves(out)
               if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    if not params or not outputs:
        return
    seeds = [torch.ones_like(t) for t in outputs]
    counter.backward = True
    with counter:
        torch.autograd.grad(outputs, params, seeds, allow_unused=True)
