"""Turn a pass's self costs into per-layer records whose totals include their children."""

from __future__ import annotations

import torch
from torch import nn

from ..torch_internals import child_modules, own_buffers, own_parameters
from .engine import PassResult
from .result import LayerRecord

_FIELDS = ("macs", "flops", "bytes", "bwd_macs", "bwd_flops", "bwd_bytes")


def _own_params(module: nn.Module):
    return [p for _, p in own_parameters(module)]


def packed_params(module: nn.Module) -> list[torch.Tensor]:
    """The weights a quantized module holds packed instead of as Parameters, unpacked (copies).

    A quantized module (``torch.ao.nn.quantized`` Linear, Conv, Embedding, the dynamic Linear)
    keeps its weight and bias in a packed object that ``parameters()`` does not list; its public
    ``weight()`` and ``bias()`` methods unpack them. The dynamic LSTM/GRU give theirs as dicts from
    ``get_weight()`` and ``get_bias()``. Those tensors are the module's parameters. Plain
    modules (whose ``weight`` is a Parameter, not a method) have none.
    """
    cls = type(module)
    if callable(getattr(cls, "weight", None)):
        getters = [getattr(module, name) for name in ("weight", "bias") if callable(getattr(cls, name, None))]
        dicts = False
    elif callable(getattr(cls, "get_weight", None)) and callable(getattr(cls, "get_bias", None)):
        getters, dicts = [module.get_weight, module.get_bias], True
    else:
        return []
    tensors: list[torch.Tensor] = []
    for getter in getters:
        try:
            value = getter()
        except Exception:  # a method named weight that is something else: no packed parameters
            return []
        if dicts:
            if not isinstance(value, dict):  # e.g. a reference module's get_weight(): a Parameter's view
                return []
            value = list(value.values())
        tensors.extend(t for t in (value if isinstance(value, list) else [value]) if isinstance(t, torch.Tensor))
    return tensors


def _packed_by_key(module: nn.Module) -> dict:
    """A module's packed parameters, each under a key that names it once: a Parameter (the
    dynamic Linear's bias is the float model's) by id, an unpacked copy by module and position."""
    return {id(t) if isinstance(t, nn.Parameter) else ("packed", id(module), i): t
            for i, t in enumerate(packed_params(module))}


def _param_sizes(module: nn.Module) -> dict:
    """{key: numel} of a module's own parameters (by id) and its packed parameters."""
    sizes: dict = {id(p): p.numel() for p in _own_params(module)}
    for key, t in _packed_by_key(module).items():
        sizes.setdefault(key, t.numel())
    return sizes


def tensor_totals(model: nn.Module, modules: list[nn.Module] | None = None) -> dict[str, int]:
    """Parameter and buffer totals in one walk (none if ``modules`` is given), shared tensors once.

    state_dict_bytes is what state_dict() holds: parameters and persistent buffers. A quantized
    module's packed weight and bias count as its parameters (never trainable).
    """
    params: dict[int, torch.Tensor] = {}
    packed: dict = {}
    buffers: dict[int, tuple[torch.Tensor, bool]] = {}
    for module in (model.modules() if modules is None else modules):
        for p in _own_params(module):
            params[id(p)] = p
        for _, b, persistent in own_buffers(module):
            buffers[id(b)] = (b, persistent)
        packed.update(_packed_by_key(module))
    packed_tensors = [t for key, t in packed.items() if key not in params]
    return {
        "params": sum(p.numel() for p in params.values()) + sum(t.numel() for t in packed_tensors),
        "trainable_params": sum(p.numel() for p in params.values() if p.requires_grad),
        "buffers": sum(b.numel() for b, _ in buffers.values()),
        "buffer_bytes": sum(b.nbytes for b, _ in buffers.values()),
        "state_dict_bytes": sum(p.nbytes for p in params.values()) + sum(t.nbytes for t in packed_tensors)
        + sum(b.nbytes for b, persistent in buffers.values() if persistent),
    }


def layer_records(model: nn.Module, result: PassResult) -> tuple[LayerRecord, list[LayerRecord]]:
    """(whole-model record, pre-order records of every submodule).

    A module reachable from two parents is rolled into the first one only, so the model
    total counts every op once.
    """
    named = [(acc.name, module) for module, acc in result.accumulators.items()]  # pre-order, as the pass
    owner: dict[nn.Module, nn.Module] = {}
    for name, module in named:
        for _, child in child_modules(module):
            owner.setdefault(child, module)
    totals = {m: [getattr(result.accumulators[m], f) for f in _FIELDS] for _, m in named}
    # parameters of each subtree, shared ones once: id -> numel, merged bottom-up
    params = {m: _param_sizes(m) for _, m in named}
    inside_ran: set[nn.Module] = set()  # modules with a module inside them that ran
    for _, module in reversed(named):  # children before parents
        parent = owner.get(module)
        if parent is not None and parent is not module:
            parent_total, child_total = totals[parent], totals[module]
            for i in range(len(_FIELDS)):
                parent_total[i] += child_total[i]
            params[parent].update(params[module])
            if result.accumulators[module].calls or module in inside_ran:
                inside_ran.add(parent)
    records = [_record(name, m, totals[m], sum(params[m].values()), result, m in inside_ran) for name, m in named]
    return records[0], records[1:]


def _record(name: str, module: nn.Module, total: list[int], params: int, result: PassResult,
            descendants_ran: bool) -> LayerRecord:
    acc = result.accumulators[module]
    return LayerRecord(
        name=name, type=type(module).__name__, depth=name.count(".") + 1 if name else 0,
        params=params, calls=acc.calls, output_shape=acc.output_shape,
        macs=total[0], flops=total[1], bytes=total[2],
        backward_macs=total[3], backward_flops=total[4], backward_bytes=total[5],
        descendants_ran=descendants_ran,
    )


def params_used(model: nn.Module, result: PassResult) -> int:
    """Parameters held directly by modules that ran in this pass, shared ones once."""
    used: dict = {}
    for m, acc in result.accumulators.items():
        if acc.calls:
            used.update(_param_sizes(m))
    return sum(used.values())


def embedding_params(model: nn.Module) -> int:
    """Parameters of the model's nn.Embedding tables (token and position embeddings), each
    once: a table tied to an output layer is still an embedding."""
    tables = {id(m.weight): m.weight.numel() for m in model.modules()
              if isinstance(m, nn.Embedding) and isinstance(getattr(m, "weight", None), torch.Tensor)}
    return sum(tables.values())
