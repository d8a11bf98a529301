"""The op-cost registry: aten op -> formula for its MACs and FLOPs.

Each formula takes the op's ``(args, kwargs, out)`` and returns ``(macs, flops)``
where ``flops`` already includes ``2 * macs``. Whether an op's tensor inputs and
outputs count as bytes moved is a property of the registration (views move none).
Lookups are keyed by ``OpOverload`` so the counter's hot path is one dict access.

Each op has one formula: registering an op twice raises, for the package's own table
as for users' ``register_formula``. A different formula for one count is an override:
``formula_table({op: formula})``, which ``count(..., formulas=...)`` uses.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch

from ..torch_internals import OpOverload, OpOverloadPacket

Formula = Callable[[tuple, dict, object], "tuple[int, int]"]


class OpCost(NamedTuple):
    formula: Formula
    # True: bytes of tensor inputs + outputs; False: none (views); or a callable
    # (args, kwargs, out) -> bytes for ops whose traffic is not their full inputs.
    moves_bytes: "bool | Callable[[tuple, dict, object], int]"


_REGISTRY: dict[OpOverload, OpCost] = {}
_USER_REGISTERED: set[OpOverload] = set()  # added by register_formula: what unregister_formula may remove


def _overloads(op) -> Iterable[OpOverload]:
    if isinstance(op, OpOverloadPacket):
        for name in op.overloads():
            yield getattr(op, name)
    else:
        yield op


def resolve_op(op) -> list[OpOverload]:
    """The overloads ``op`` stands for.

    op: an OpOverload; an OpOverloadPacket (all its overloads); or a name, "ns::name" or
    "ns::name.overload" (also "ns.name.overload", as ``uncounted_ops`` prints it).
    """
    if isinstance(op, OpOverload):
        return [op]
    if isinstance(op, OpOverloadPacket):
        return list(_overloads(op))
    if isinstance(op, str):
        return list(_overloads(_op_named(op)))
    raise TypeError(f"expected an OpOverload, an OpOverloadPacket or an op name such as 'mylib::my_op', "
                    f"got {type(op).__name__} (for a torch.library.custom_op, pass torch.ops.<ns>.<name>)")


def _op_named(name: str):
    namespace, sep, rest = name.partition("::")
    if not sep:
        namespace, sep, rest = name.partition(".")
    op_name, _, overload = rest.partition(".")
    if not namespace or not op_name:
        raise ValueError(f"op name {name!r} is not of the form 'namespace::op' or 'namespace::op.overload'")
    try:
        packet = getattr(getattr(torch.ops, namespace), op_name)
        return getattr(packet, overload) if overload else packet
    except AttributeError:
        raise ValueError(f"no op {name!r} in torch.ops (is the library that defines it imported?)") from None


def _check_formula(formula) -> None:
    if not callable(formula):
        raise TypeError(f"a cost formula is a callable (args, kwargs, out) -> (macs, flops), got {formula!r}")


def _add(overloads: list[OpOverload], cost: OpCost) -> None:
    """Enter ``cost`` for every overload, or none of them if one already has a formula."""
    seen = set()
    for overload in overloads:
        if overload in seen:
            raise ValueError(f"{overload} is listed twice in one registration")
        if overload in _REGISTRY:
            raise ValueError(f"{overload} already has a cost formula; count(..., formulas={{'{overload}': f}}) "
                             f"overrides it for one call"
                             + (", unregister_formula() removes it" if overload in _USER_REGISTERED else ""))
        seen.add(overload)
    for overload in overloads:
        _REGISTRY[overload] = cost


def register(*ops, moves_bytes=True) -> Callable[[Formula], Formula]:
    """Register ``formula`` for every overload of each op (packets or overloads), for the built-in table.

    Ops missing from this torch build are never passed (``aten_ops`` leaves them out), so the
    table works across versions. An op that already has a formula raises ValueError.
    """

    def wrap(formula: Formula) -> Formula:
        _check_formula(formula)
        _add([overload for op in ops for overload in _overloads(op)], OpCost(formula, moves_bytes))
        return formula

    return wrap


def register_formula(op, formula: Formula | None = None, *, moves_bytes=True):
    """Give an op with no formula (a custom op, say) a cost: ``formula(args, kwargs, out) -> (macs, flops)``.

    op: an OpOverload, an OpOverloadPacket (every overload) or a name, "mylib::op" or
    "mylib::op.default". flops includes 2 x macs. moves_bytes: True counts the bytes of the
    op's tensor inputs and outputs, False none (a view), or a callable (args, kwargs, out) -> bytes.
    Usable as a decorator (``@register_formula("mylib::op")``). Registering an op that already
    has a formula, built-in or not, raises ValueError: ``count(..., formulas={op: f})`` overrides
    one for a single call, ``unregister_formula`` removes a registration made here.
    """
    overloads = resolve_op(op)

    def wrap(f: Formula) -> Formula:
        _check_formula(f)
        if not isinstance(moves_bytes, bool) and not callable(moves_bytes):
            raise TypeError(f"moves_bytes is True, False or a callable (args, kwargs, out) -> bytes, "
                            f"got {moves_bytes!r}")
        _add(overloads, OpCost(f, moves_bytes))
        _USER_REGISTERED.update(overloads)
        return f

    return wrap if formula is None else wrap(formula)


def unregister_formula(op) -> None:
    """Remove the formula(s) ``register_formula`` gave ``op`` (every registered overload of a packet).

    Raises KeyError if ``op`` has none registered that way (built-in formulas cannot be removed).
    """
    overloads = [o for o in resolve_op(op) if o in _USER_REGISTERED]
    if not overloads:
        raise KeyError(f"{op} has no formula added by register_formula")
    for overload in overloads:
        _USER_REGISTERED.discard(overload)
        _REGISTRY.pop(overload, None)


def formula_table(overrides: dict | None = None) -> dict:
    """The table one count uses: the live registry, with ``overrides`` ({op: formula}) on top.

    Keys are resolved as ``register_formula``'s op (packets cover every overload). A value is a
    formula, which keeps the op's bytes rule (True for an op with none), or an ``OpCost``.
    Without overrides this is the live table itself, not a copy.
    """
    if not overrides:
        return _REGISTRY
    table = dict(_REGISTRY)
    for op, value in overrides.items():
        for overload in resolve_op(op):
            if isinstance(value, OpCost):
                cost = value
            else:
                _check_formula(value)
                existing = _REGISTRY.get(overload)
                cost = OpCost(value, existing.moves_bytes if existing is not None else True)
            table[overload] = cost
    return table


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
