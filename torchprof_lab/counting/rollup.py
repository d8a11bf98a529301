"""Turn a pass's self costs into per-layer records whose totals include their children."""

from __future__ import annotations

from torch import nn

from ..report.records import LayerRecord
from .engine import PassResult

_FIELDS = ("macs", "flops", "bytes", "bwd_macs", "bwd_flops", "bwd_bytes")


def unique_numel(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel()
    return total


def layer_records(model: nn.Module, result: PassResult) -> tuple[LayerRecord, list[LayerRecord]]:
    """(whole-model record, pre-order records of every submodule).

    A module reachable from two parents is rolled into the first one only, so the model
    total counts every op once.
    """
    named = list(model.named_modules())
    owner: dict[nn.Module, nn.Module] = {}
    for name, module in named:
        for child in module.children():
            owner.setdefault(child, module)
    totals = {m: [getattr(result.accumulators[m], f) for f in _FIELDS] for _, m in named}
    # parameters of each subtree, shared ones once: id -> numel, merged bottom-up
    params = {m: {id(p): p.numel() for p in m.parameters(recurse=False)} for _, m in named}
    for _, module in reversed(named):  # children before parents
        parent = owner.get(module)
        if parent is not None and parent is not module:
            parent_total, child_total = totals[parent], totals[module]
            for i in range(len(_FIELDS)):
                parent_total[i] += child_total[i]
            params[parent].update(params[module])
    records = [_record(name, m, totals[m], sum(params[m].values()), result) for name, m in named]
    return records[0], records[1:]


def _record(name: str, module: nn.Module, total: list[int], params: int, result: PassResult) -> LayerRecord:
    acc = result.accumulators[module]
    return LayerRecord(
        name=name, type=type(module).__name__, depth=name.count(".") + 1 if name else 0,
        params=params, calls=acc.calls, output_shape=acc.output_shape,
        macs=total[0], flops=total[1], bytes=total[2],
        backward_macs=total[3], backward_flops=total[4], backward_bytes=total[5],
    )


def params_used(model: nn.Module, result: PassResult) -> int:
    """Parameters held directly by modules that ran in this pass, shared ones once."""
    used = (p for m, acc in result.accumulators.items() if acc.calls for p in m.parameters(recurse=False))
    return unique_numel(used)
