"""The dispatch-level counter: sees every aten op and charges its cost to a layer."""

from __future__ import annotations

from torch import Tensor

from ..torch_internals import TorchDispatchMode, can_decompose, decompose
from . import fast_meta
from .attribution import LayerTracker
from .formulas import library_cost
from .registry import registry


def _nbytes(t: Tensor) -> int:
    """A tensor's bytes; a nested tensor whose layout has no flat size: its components' bytes."""
    try:
        return t.nbytes
    except RuntimeError:
        if not t.is_nested:
            raise
        return sum(c.nbytes for c in t.unbind())


def _tensor_bytes(values, nbytes=None) -> int:
    """Bytes of the tensors in ``values`` and in lists/tuples inside it (no pytree walk)."""
    n = 0
    for a in values:
        if isinstance(a, Tensor):
            n += a.nbytes if nbytes is None else nbytes(a)
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, Tensor):
                    n += b.nbytes if nbytes is None else nbytes(b)
    return n


def _io_bytes(args, out, nbytes=None) -> int:
    if isinstance(out, Tensor):
        return _tensor_bytes(args, nbytes) + _tensor_bytes((out,), nbytes)
    return _tensor_bytes(args, nbytes) + (_tensor_bytes(out, nbytes) if isinstance(out, (list, tuple)) else 0)


def _any_nested(args) -> bool:
    return any(isinstance(a, Tensor) and a.is_nested for a in args)


def io_bytes(args, out) -> int:
    """Bytes of an op's tensor arguments and results (nested tensors: their components')."""
    try:
        return _io_bytes(args, out)
    except RuntimeError:  # a tensor with no flat size: the slow path, per component
        return _io_bytes(args, out, _nbytes)


# ops that read a tensor's values (.item(), bool(), an output sized by the data): a meta tensor has none
DATA_DEPENDENT = frozenset({"aten::_local_scalar_dense", "aten::is_nonzero", "aten::nonzero", "aten::item",
                            "aten::masked_select", "aten::unique", "aten::_unique2"})


class MetaValueRead(RuntimeError):
    """A data-dependent op ran on a meta tensor; ``op`` names it."""

    def __init__(self, op: str):
        self.op = op
        super().__init__(f"{op} reads tensor values, which meta tensors do not have")


def _reads_meta_values(func, args) -> bool:
    return func.name() in DATA_DEPENDENT and any(isinstance(a, Tensor) and a.is_meta for a in args)


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
        if _reads_meta_values(func, args):
            raise MetaValueRead(func.name())
        cost = self._table.get(func)
        if cost is None:
            cost = library_cost(func)  # an op of a library loaded after ours (torchvision)
            if cost is None:
                return self._without_formula(func, types, args, kwargs)
            self._table.setdefault(func, cost)  # a per-count table (overrides) gets it too
        out = fast_meta.run(func, args, kwargs)
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

    def _without_formula(self, func, types, args, kwargs):
        """Composite ops (seen whole under inference_mode) run as their parts; others are listed.

        An op on a tensor subclass (``types`` names it: a jagged nested tensor) or on a nested
        tensor is run whole, as its own kernel implements it: the generic decomposition would
        treat it as a plain tensor (a nested ``linear`` decomposes into sizes and views that
        nested tensors do not have), so it is listed instead.
        """
        try:
            decomposable = not types and can_decompose(func) and not _any_nested(args)
        except RuntimeError:  # ops unknown to the dispatcher's tables, e.g. prim::device
            decomposable = False
        if decomposable:
            with self:
                out = decompose(func, *args, **kwargs)
            if out is not NotImplemented:
                return out
        self.uncounted[func] = self.uncounted.get(func, 0) + 1
        return func(*args, **kwargs)
