"""The private torch API the package relies on still exists in the installed torch and means what we think.

If a torch upgrade breaks one of these, fix torchprof_lab/torch_internals.py: nothing else
in the package touches private torch names (the last test checks that too).
"""

import importlib
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import torchprof_lab
from torchprof_lab import torch_internals as ti


def _example_instance(cls):
    """An instance of ``cls`` for checking instance attributes (set in __init__, not on the class)."""
    if issubclass(cls, nn.Module) and cls is not nn.Module:  # torch.compile's wrapper; compiles on first call only
        return torch.compile(nn.Linear(2, 2))
    return cls()


def resolve(path: str):
    """Import the longest importable prefix of ``path``, then getattr the rest (on an instance if need be)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    else:
        raise ImportError(path)
    for name in parts[i:]:
        if not hasattr(obj, name) and isinstance(obj, type):
            obj = _example_instance(obj)
        obj = getattr(obj, name)
    return obj


def test_multi_head_attention_calls_the_functional_global_the_memory_prediction_swaps():
    forward = torch.nn.functional.multi_head_attention_forward
    assert "scaled_dot_product_attention" in forward.__code__.co_names
    assert torch.nn.functional.scaled_dot_product_attention is ti.SDPA
    assert ti.functional_attention.owner is torch.nn.functional and ti.storage_resize.owner is torch.UntypedStorage


@pytest.mark.parametrize("path", ti.REQUIRED)
def test_required_symbol_resolves(path):
    assert resolve(path) is not None


def test_required_names_every_private_name_used():
    """Each private attribute spelled in torch_internals.py's code is listed in REQUIRED."""
    source = Path(ti.__file__).read_text()
    code = "\n".join(line.split("#")[0] for line in source.splitlines() if not line.lstrip().startswith('"'))
    code = code.split("REQUIRED = (")[0]
    used = set(re.findall(r"\.(_[a-z][a-z0-9_]*)", code)) - {"_pytree", "_python_dispatch", "_ops", "_C",
                                                                 "_autograd", "_nn"}
    used |= {"_orig_mod"}  # spelled through COMPILED_PREFIX
    listed = {path.rsplit(".", 1)[1] for path in ti.REQUIRED}
    assert used <= listed, used - listed


def test_sequence_nr_of_a_real_autograd_node():
    x = torch.ones(3, requires_grad=True)
    before = ti.get_sequence_nr()
    y = x * 2
    node = y.grad_fn
    assert isinstance(ti.sequence_nr_of(node), int)
    assert ti.sequence_nr_of(node) >= before
    assert ti.sequence_nr_of((y + 1).grad_fn) > ti.sequence_nr_of(node)
    seen = []

    def hook(grad):
        seen.append(ti.current_autograd_node())
        return grad

    y.register_hook(hook)
    y.sum().backward()
    assert ti.current_autograd_node() is None
    assert seen and seen[0] is not None


def test_can_decompose_on_op_overloads():
    assert hasattr(torch.ops.aten.mm.default, "_can_decompose")
    assert ti.can_decompose(torch.ops.aten.linear.default)  # a composite with a C++ decomposition
    assert not ti.can_decompose(torch.ops.aten.mm.default)
    x, w = torch.randn(2, 3), torch.randn(4, 3)
    torch.testing.assert_close(ti.decompose(torch.ops.aten.linear.default, x, w), x @ w.T)


def test_foreach_copy_copies_in_place():
    dst, src = [torch.zeros(2), torch.zeros(3)], [torch.ones(2), torch.full((3,), 2.0)]
    ti.foreach_copy_(dst, src)
    assert all(torch.equal(d, s) for d, s in zip(dst, src))


class _Block(nn.Module):
    def __init__(self, shared: nn.Module):
        super().__init__()
        self.shared = shared
        self.own = nn.Linear(4, 4)
        self.register_buffer("steps", torch.zeros(()), persistent=False)
        self.register_buffer("scale", torch.ones(4))
        self.register_buffer("absent", None)
        self.register_parameter("missing", None)
        self.again = shared  # the same child twice in one module: public API lists it once


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        shared = nn.Linear(4, 4)
        self.a, self.b = _Block(shared), _Block(shared)  # a child shared between two parents
        self.bias = nn.Parameter(torch.zeros(4))
        self.alias = self.bias  # one parameter under two names


@pytest.mark.parametrize("module_name", ["", "a", "b", "a.shared", "a.own"])
def test_module_helpers_agree_with_public_api(module_name):
    module = _Model().get_submodule(module_name)
    assert [(n, id(p)) for n, p in ti.own_parameters(module)] == \
        [(n, id(p)) for n, p in module.named_parameters(recurse=False)]
    assert [(n, id(b)) for n, b, _ in ti.own_buffers(module)] == \
        [(n, id(b)) for n, b in module.named_buffers(recurse=False)]
    persistent = set(module.state_dict(keep_vars=True))
    assert [(n, keep) for n, _, keep in ti.own_buffers(module)] == \
        [(n, n in persistent) for n, _ in module.named_buffers(recurse=False)]
    assert [(n, id(c)) for n, c in ti.child_modules(module)] == \
        [(n, id(c)) for n, c in module.named_children()]


def test_non_persistent_buffer_is_reported():
    block = _Model().a
    assert {n: keep for n, _, keep in ti.own_buffers(block)} == {"steps": False, "scale": True}


def test_uncompiled():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    assert ti.uncompiled(model) is model
    compiled = torch.compile(model)
    assert ti.uncompiled(compiled) is model
    wrapper, *names = [ti.uncompiled_name(n) for n, _ in compiled.named_modules()]
    assert wrapper == "" and names == [n for n, _ in model.named_modules()]  # ["", "0", "1", "1.0"]


def test_no_other_module_spells_private_torch_api():
    package = Path(torchprof_lab.__file__).parent
    pattern = re.compile(r"torch\._(?!_)|utils\._(?!_)|\._parameters|\._buffers|\._modules|_non_persistent_buffers_set"
                         r"|\._sequence_nr|\._can_decompose|\.decompose\(|_foreach_|_orig_mod")
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "torch_internals.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
