"""Every private torch API the package uses, in one place.

No other module of the package may import from a ``torch._*`` / ``torch.utils._*`` path
or read an underscore attribute of a torch object: it imports the name from here. When a
torch release moves one of these, this file (and ``REQUIRED``, which
``tests/test_torch_internals.py`` resolves against the installed torch) is the whole fix.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .global_swap import GlobalSwap

# ---------------------------------------------------------------------- pytree
# nested inputs/outputs (tuples, lists, dicts, dataclasses) walked the way torch itself does;
# torch has no public pytree module yet
from torch.utils._pytree import tree_leaves, tree_map

# ---------------------------------------------------------------------- dispatch
# the hook below autograd that sees every aten op a model runs: the counter is one of these
from torch.utils._python_dispatch import TorchDispatchMode

# the type of the ``func`` a dispatch mode receives (the formula table's keys) and of
# ``torch.ops.ns.name``, which stands for all of an op's overloads
from torch._ops import OpOverload, OpOverloadPacket


def can_decompose(op: OpOverload) -> bool:
    """Whether ``op`` is a composite with a C++ decomposition (seen whole under inference_mode)."""
    return op._can_decompose()


def decompose(op: OpOverload, *args, **kwargs):
    """Run ``op`` as its parts, so each part meets the counter (NotImplemented if it has none)."""
    return op.decompose(*args, **kwargs)


# ---------------------------------------------------------------------- autograd
# the sequence number the next autograd node will get: recorded at each module boundary in
# the forward, it says which layer made each node
get_sequence_nr = torch._C._autograd._get_sequence_nr
# the autograd node now running backward (None outside backward): whose gradient an op computes
current_autograd_node = torch._C._current_autograd_node


def sequence_nr_of(node) -> int:
    """An autograd node's sequence number (the one ``get_sequence_nr`` gave out when it was made)."""
    return node._sequence_nr()


# ---------------------------------------------------------------------- tensors
# copies a list of tensors into another in one call (restoring buffers: half a loop's time)
foreach_copy_ = torch._foreach_copy_


# ---------------------------------------------------------------------- attention kernels (target_kernels.py)
# the fused kernels scaled_dot_product_attention runs on a CPU and on CUDA: a meta count or prediction calls
# them to keep what the target keeps (they have meta kernels and derivatives); and the softmax of
# its math path, which says that path ran
flash_attention_cpu = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
efficient_attention = torch.ops.aten._scaled_dot_product_efficient_attention.default
safe_softmax = torch.ops.aten._safe_softmax.default

# torch's own choice of the kernel scaled_dot_product_attention runs for these tensors (an int, an
# ``SDPBackend``), asked of CPU stand-ins by a meta pass that follows the CPU; and the context that
# hides such a question of the profiler's from the dispatch modes (counter, memory tracker) running
fused_sdp_choice = torch._fused_sdp_choice
from torch.utils._python_dispatch import _disable_current_modes as dispatch_modes_off  # noqa: E402

# nn.MultiheadAttention's F.multi_head_attention_forward calls torch.nn.functional's module global
# ``scaled_dot_product_attention``; a function mode sees that forward whole (modes are off inside a
# function they handle), so a meta prediction following the target's attention swaps the global
# (the test checks the forward still calls it). ``SDPA`` is torch's builtin, whatever the global is.
SDPA = torch._C._nn.scaled_dot_product_attention
functional_attention = GlobalSwap(torch.nn.functional, "scaled_dot_product_attention")

# FSDP2 allocates and frees its unsharded parameters with ``UntypedStorage.resize_``, which no
# dispatch mode sees: the memory tracker follows it through this swap while it measures FSDP2
storage_resize = GlobalSwap(torch.UntypedStorage, "resize_")


# ---------------------------------------------------------------------- the profiler's memory timeline
def profiler_allocations(prof, device: str = "cpu") -> list[tuple[int, int, bool]]:
    """(+bytes or -bytes, time, tied to a tensor?) of every allocation and free torch's profiler
    recorded on ``device``, in order. An allocation not tied to a tensor is one no op returned:
    a kernel's internal workspace (the public export folds these into "unknown")."""
    from torch.profiler._memory_profiler import Action, MemoryProfileTimeline, TensorKey

    timeline = MemoryProfileTimeline(prof._memory_profile())
    wanted = torch.device(device)
    out = []
    for t, action, (key, _), nbytes in timeline.timeline:
        if key.device != wanted or action == Action.INCREMENT_VERSION:
            continue
        sign = -1 if action == Action.DESTROY else 1
        out.append((sign * int(nbytes), t, isinstance(key, TensorKey)))
    return out


# ---------------------------------------------------------------------- module internals
# A module's own members straight from its dicts: named_parameters(recurse=False) and friends
# build a generator over named_modules per call, too slow in a walk over every layer.
# Each member once, under its first name, as the public methods give them.

def own_parameters(module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) held by ``module`` itself, as ``named_parameters(recurse=False)``."""
    seen: set[int] = set()
    for name, p in module._parameters.items():
        if p is not None and id(p) not in seen:
            seen.add(id(p))
            yield name, p


def own_buffers(module: nn.Module) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """(name, buffer, persistent) held by ``module`` itself, as ``named_buffers(recurse=False)``.

    persistent: whether state_dict() holds it (``register_buffer(..., persistent=False)`` is not).
    """
    seen: set[int] = set()
    non_persistent = module._non_persistent_buffers_set
    for name, b in module._buffers.items():
        if b is not None and id(b) not in seen:
            seen.add(id(b))
            yield name, b, name not in non_persistent


def module_containers(module: nn.Module) -> tuple[dict, dict, dict, set]:
    """The dicts (and set) a module keeps its members in, as the very objects it holds:
    (parameters, buffers, submodules, names of non-persistent buffers). Snapshotting and
    restoring their contents undoes members added, removed or replaced during a forward."""
    return module._parameters, module._buffers, module._modules, module._non_persistent_buffers_set


def child_modules(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, child) of ``module``'s direct submodules, as ``named_children()``."""
    seen: set[int] = set()
    for name, child in module._modules.items():
        if child is not None and id(child) not in seen:
            seen.add(id(child))
            yield name, child


# ---------------------------------------------------------------------- torch.compile
# torch.compile(module) returns an OptimizedModule wrapping the original as ``_orig_mod``:
# layer names under it carry this prefix
COMPILED_PREFIX = "_orig_mod"


def uncompiled(module: nn.Module) -> nn.Module:
    """The module ``torch.compile`` wrapped (``module`` itself when it is not compiled)."""
    return getattr(module, COMPILED_PREFIX, module)


def uncompiled_name(name: str) -> str:
    """A layer name of a compiled module as the original module names it ("_orig_mod.fc" -> "fc")."""
    return name.removeprefix(COMPILED_PREFIX + ".").removeprefix(COMPILED_PREFIX)


# ---------------------------------------------------------------------- FSDP2 (distributed.py's memory)
def fsdp_buffer_ops() -> tuple:
    """FSDP2's own ops (``torch.ops.fsdp``, registered when torch.distributed.fsdp is imported):
    ``all_gather_copy_in`` returns the flat all-gather buffer, ``chunk_cat`` fills the flat
    reduce-scatter input (``out=``), ``split_with_sizes_copy`` fills the unsharded parameters (``out=``)."""
    import torch.distributed.fsdp  # noqa: F401  registers the ops

    ops = torch.ops.fsdp
    return ops.all_gather_copy_in.default, ops.chunk_cat.default, ops.split_with_sizes_copy.default


# ---------------------------------------------------------------------- the contract
# Every private name above as a dotted path: importable module, then attributes. Instance
# attributes are named on their class (the test resolves them on an instance).
REQUIRED = (
    "torch.utils._pytree.tree_leaves",
    "torch.utils._pytree.tree_map",
    "torch.utils._python_dispatch.TorchDispatchMode",
    "torch._ops.OpOverload",
    "torch._ops.OpOverloadPacket",
    "torch._ops.OpOverload._can_decompose",
    "torch._ops.OpOverload.decompose",
    "torch._C._autograd._get_sequence_nr",
    "torch._C._current_autograd_node",
    "torch.autograd.graph.Node._sequence_nr",
    "torch._foreach_copy_",
    "torch.nn.Module._parameters",
    "torch.nn.Module._buffers",
    "torch.nn.Module._non_persistent_buffers_set",
    "torch.nn.Module._modules",
    "torch._dynamo.eval_frame.OptimizedModule._orig_mod",
    "torch.profiler._memory_profiler",
    "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu",
    "torch.ops.aten._scaled_dot_product_efficient_attention",
    "torch.ops.aten._safe_softmax",
    "torch._fused_sdp_choice",
    "torch.utils._python_dispatch._disable_current_modes",
    "torch.nn.functional.multi_head_attention_forward",
    "torch._C._nn.scaled_dot_product_attention",
    "torch.UntypedStorage.resize_",
    "torch.profiler._memory_profiler.MemoryProfileTimeline",
    "torch.profiler._memory_profiler.TensorKey",
    "torch.profiler._memory_profiler.Action",
    "torch.profiler.profiler.profile._memory_profile",
    # FSDP2's ops, reached through the private module that registers them
    "torch.distributed.fsdp._fully_shard._fsdp_collectives.torch.ops.fsdp.all_gather_copy_in",
    "torch.distributed.fsdp._fully_shard._fsdp_collectives.torch.ops.fsdp.chunk_cat",
    "torch.distributed.fsdp._fully_shard._fsdp_collectives.torch.ops.fsdp.split_with_sizes_copy",
)

__all__ = [
    "tree_leaves", "tree_map", "TorchDispatchMode", "OpOverload", "OpOverloadPacket",
    "can_decompose", "decompose", "get_sequence_nr", "current_autograd_node", "sequence_nr_of",
    "foreach_copy_", "own_parameters", "own_buffers", "module_containers", "child_modules", "COMPILED_PREFIX",
    "uncompiled", "uncompiled_name", "profiler_allocations", "flash_attention_cpu",
    "efficient_attention", "safe_softmax", "fused_sdp_choice", "dispatch_modes_off", "fsdp_buffer_ops", "SDPA", "functional_attention", "storage_resize", "REQUIRED",
]
