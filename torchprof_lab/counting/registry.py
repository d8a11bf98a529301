"""The op-cost registry: aten op -> formula for its MACs and FLOPs.

Each formula takes the op's ``(args, kwargs, out)`` and returns ``(macs, flops)``
where ``flops`` already includes ``2 * macs``. Whether an op's tensor inputs and
outputs count as bytes moved is a property of the registration (views move none).
Lookups are keyed by ``OpOverload`` so the counter's hot path is one dict access.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch

Formula = Callable[[tuple, dict, object], "tuple[int, int]"]


class OpCost(NamedTuple):
    formula: Formula
    # True: bytes of tensor inputs + outputs; False: none (views); or a callable
    # (args, kwargs, out) -> bytes for ops whose traffic is not their full inputs.
    moves_bytes: "bool | Callable[[tuple, dict, object], int]"


_REGISTRY: dict[torch._ops.OpOverload, OpCost] = {}


def _overloads(op) -> Iterable[torch._ops.OpOverload]:
    if isinstance(op, torch._ops.OpOverloadPacket):
        for name in op.overloads():
            yield getattr(op, name)
    else:
        yield op


def register(*ops, moves_bytes=True) -> Callable[[Formula], Formula]:
    """Register ``formula`` for every overload of each op (packets or overloads).

    Ops missing from this torch build are skipped, so the table works across versions.
    """

    def wrap(formula: Formula) -> Formula:
        for op in ops:
            for overload in _overloads(op):
                _REGISTRY[overload] = OpCost(formula, moves_bytes)
        return formula

    return wrap


def registry() -> dict:
    """The live table, keyed by OpOverload (read-only by convention)."""
    return _REGISTRY


def lookup(op) -> OpCost | None:
    return _REGISTRY.get(op)


def aten_ops(*names: str) -> list:
    """The aten op packets among ``names`` (and their in-place ``name_`` twins) that this torch has."""
    ops = []
    for name in names:
        for variant in (name, name + "_"):
            op = getattr(torch.ops.aten, variant, None)
            if op is not None:
                ops.append(op)
    return ops
