"""The dispatch-level counter: sees every aten op and charges its cost to a layer."""

from __future__ import annotations

from torch import Tensor

from ..torch_internals import TorchDispatchMode, can_decompose, decompose
from .attribution import LayerTracker
from .registry import registry


def _tensor_bytes(values) -> int:
    """Bytes of the tensors in ``values`` and in lists/tuples inside it (no pytree walk)."""
    n = 0
    for a in values:
        if isinstance(a, Tensor):
            n += a.nbytes
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, Tensor):
                    n += b.nbytes
    return n


def io_bytes(args, out) -> int:
    """Bytes of an op's tensor arguments and results."""
    if isinstance(out, Tensor):
        return _tensor_bytes(args) + out.nbytes
    return _tensor_bytes(args) + (_tensor_bytes(out) if isinstance(out, (list, tuple)) else 0)


class CountingMode(TorchDispatchMode):
    """Runs each op, looks up its formula and adds MACs, FLOPs and bytes to the running layer."""

    def __init__(self, tracker: LayerTracker, table: dict | None = None):
        """table: {OpOverload: OpCost} to count with (``registry.formula_table``); default the live registry."""
        super().__init__()
        self.tracker = tracker
        self.backward = False
        self.uncounted: dict = {}
        self._table = registry() if table is None else table
        self._stack = tracker.stack

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        cost = self._table.get(func)
        if cost is None:
            return self._without_formula(func, args, kwargs)
        out = func(*args, **kwargs)
        try:
            macs, flops = cost.formula(args, kwargs, out)
            moves = cost.moves_bytes
            if moves is True:
                nbytes = io_bytes(args, out)
            elif moves:
                nbytes = moves(args, kwargs, out)
            else:
                nbytes = 0
        except Exception:  # an argument form the formula does not know: list it, never guess
            self.uncounted[func] = self.uncounted.get(func, 0) + 1
            return out
        if self.backward:
            acc = self.tracker.backward_owner()
            acc.bwd_macs += macs
            acc.bwd_flops += flops
            acc.bwd_bytes += nbytes
        else:
            acc = self._stack[-1]
            acc.macs += macs
            acc.flops += flops
            acc.bytes += nbytes
        return out

    def _without_formula(self, func, args, kwargs):
        """Composite ops (seen whole under inference_mode) run as their parts; others are listed."""
        try:
            decomposable = can_decompose(func)
        except RuntimeError:  # ops unknown to the dispatcher's tables, e.g. prim::device
            decomposable = False
        if decomposable:
            with self:
                out = decompose(func, *args, **kwargs)
            if out is not NotImplemented:
                return out
        self.uncounted[func] = self.uncounted.get(func, 0) + 1
        return func(*args, **kwargs)
