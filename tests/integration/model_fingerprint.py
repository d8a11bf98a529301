"""A model's complete observable state, to check that profiling left it exactly as it was.

``fingerprint`` records, for every module reachable from the model: its type, training flag,
every ``__dict__`` entry by object identity (parameters, buffers and submodules dicts, hook
dicts, plain attributes), the keys of its parameter/buffer/submodule dicts, the ids and values
of its parameters, buffers and plain tensor attributes (dtype, device, requires_grad, ``.grad``),
and the global RNG state. ``assert_untouched`` compares two fingerprints and also checks that
no inference tensor and no meta tensor (unless there was one before) is left on the model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from torchprof_lab.torch_internals import module_containers

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
               "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def _tensor_record(t: torch.Tensor) -> dict:
    record = {"id": id(t), "type": type(t), "requires_grad": t.requires_grad}
    if is_lazy(t):
        return record
    record.update(dtype=t.dtype, device=t.device, shape=tuple(t.shape), inference=t.is_inference())
    if t.device.type != "meta":
        record["value"] = t.detach().clone()
    grad = t.grad if isinstance(t, nn.Parameter) else None
    record["grad"] = None if grad is None else (id(grad), grad.detach().clone())
    return record


def tensors_on(model: nn.Module):
    """Every tensor the model's modules hold: parameters, buffers, their grads, tensor attributes."""
    for module in model.modules():
        params, buffers, _, _ = module_containers(module)
        attrs = []
        for v in vars(module).values():  # tensor attributes, and tensors in list/tuple attributes
            attrs.extend(x for x in (v if isinstance(v, (list, tuple)) else [v]) if isinstance(x, torch.Tensor))
        for t in (*params.values(), *buffers.values(), *attrs):
            if t is None:
                continue
            yield t
            if isinstance(t, nn.Parameter) and t.grad is not None:
                yield t.grad


def fingerprint(model: nn.Module) -> dict:
    modules = []
    for name, m in model.named_modules(remove_duplicate=False):
        params, buffers, children, non_persistent = module_containers(m)
        d = vars(m)
        modules.append({
            "name": name, "id": id(m), "type": type(m), "training": m.training,
            "dict": {k: id(v) for k, v in d.items()},
            "params": {k: None if p is None else _tensor_record(p) for k, p in params.items()},
            "buffers": {k: None if b is None else _tensor_record(b) for k, b in buffers.items()},
            "children": {k: id(c) for k, c in children.items()},
            "non_persistent": sorted(non_persistent),
            "attrs": {k: _tensor_record(v) for k, v in d.items() if isinstance(v, torch.Tensor)},
            "hooks": {h: [(k, id(f)) for k, f in d[h].items()] for h in _HOOK_DICTS if h in d},
        })
    return {"modules": modules, "rng": torch.get_rng_state()}


def _diff_tensor(where: str, a: dict | None, b: dict | None) -> list[str]:
    if a is None or b is None:
        return [] if a is b else [f"{where}: {a and a['id']} -> {b and b['id']}"]
    problems = []
    for key in a.keys() | b.keys():
        va, vb = a.get(key), b.get(key)
        if key == "value":
            if va is None or vb is None or va.shape != vb.shape or not torch.equal(va, vb):
                problems.append(f"{where}: value changed")
        elif key == "grad":
            if (va is None) != (vb is None) or (va and (va[0] != vb[0] or not torch.equal(va[1], vb[1]))):
                problems.append(f"{where}: .grad changed")
        elif va != vb:
            problems.append(f"{where}: {key} {va!r} -> {vb!r}")
    return problems


def differences(before: dict, after: dict) -> list[str]:
    """What changed between two fingerprints, as readable lines (empty: nothing)."""
    problems = []
    if not torch.equal(before["rng"], after["rng"]):
        problems.append("torch's CPU RNG state changed")
    if len(before["modules"]) != len(after["modules"]):
        problems.append(f"{len(before['modules'])} modules before, {len(after['modules'])} after")
    for a, b in zip(before["modules"], after["modules"]):
        where = a["name"] or "<model>"
        for key in ("name", "id", "type", "training", "dict", "children", "non_persistent", "hooks"):
            if a[key] != b[key]:
                problems.append(f"{where}: {key} changed: {a[key]!r} -> {b[key]!r}")
        for kind in ("params", "buffers", "attrs"):
            if a[kind].keys() != b[kind].keys():
                problems.append(f"{where}: {kind} {sorted(a[kind])} -> {sorted(b[kind])}")
            for key in a[kind].keys() & b[kind].keys():
                problems += _diff_tensor(f"{where}.{key}", a[kind][key], b[kind][key])
    return problems


def assert_untouched(before: dict, model: nn.Module, *, meta_before: bool = False) -> None:
    problems = differences(before, fingerprint(model))
    for t in tensors_on(model):
        if not is_lazy(t) and t.is_inference():
            problems.append(f"an inference tensor {tuple(t.shape)} is left on the model")
        if not meta_before and not is_lazy(t) and t.is_meta:
            problems.append(f"a meta tensor {tuple(t.shape)} is left on the model")
    assert not problems, "\n".join(problems)


def train_step(model: nn.Module, *args) -> None:
    """One forward + backward outside inference mode: fails if an inference tensor is saved for backward."""
    out = model(*args)
    leaves = [t for t in (out if isinstance(out, (tuple, list)) else [out])
              if isinstance(t, torch.Tensor) and t.is_floating_point()]
    loss = sum(t.float().mean() for t in leaves)
    loss.backward()
