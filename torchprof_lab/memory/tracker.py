"""The tracker: every tensor storage a step creates and frees, by category and by layer.

One ``TorchDispatchMode`` sees every op's outputs below autograd; each new storage (views share
their base's) is recorded with its size, and a weak reference on the storage object records its
free. The same code runs on meta stand-ins and on real tensors: a meta tensor has no address,
but its storage object lives exactly as long as the storage would (torch keeps one Python object
per storage), so identity plus a weak reference is the one mechanism for both.

Categories: parameters, buffers and inputs are known before the step; a storage autograd saves
for backward (``saved_tensors_hooks``) is an activation, a parameter's ``.grad`` a gradient, a
tensor the optimizer's state holds an optimizer state; everything else is temporary. A storage
has one category for its whole life (decided by the end of the step).

Under FSDP2 (``memory_of_parallel_step``) two more things are followed: a DTensor's op runs as
its local ops, which the tracker sees (a DTensor is counted by its shard on this rank), and
``UntypedStorage.resize_``, which FSDP2 uses to allocate and free its unsharded parameters and
which no dispatch mode sees, is followed while the tracker runs with ``resizes=True``.
"""

from __future__ import annotations

import sys
import weakref
from bisect import bisect_right

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..counting import fast_meta
from ..torch_internals import (TorchDispatchMode, current_autograd_node, get_sequence_nr, safe_softmax,
                               sequence_nr_of, storage_resize, tree_leaves)

# what data parallelism adds on a rank (memory_of_parallel_step): FSDP2's all-gathered parameters;
# DDP's gradient buckets and FSDP2's flat all-gather and reduce-scatter buffers
PARALLEL_CATEGORIES = ("gathered_parameters", "comm_buffers")
# known up front, or named by the parallel wrapper: never re-categorised
_FIXED = {"parameters", "buffers", "inputs", *PARALLEL_CATEGORIES}
CUDA_BLOCK = 512  # the CUDA caching allocator rounds every request up to a multiple of this


def _dtensor_class():
    """torch's DTensor class once torch.distributed.tensor is imported (none can exist before)."""
    return getattr(sys.modules.get("torch.distributed.tensor"), "DTensor", None)


def local_tensor(t):
    """What a tensor occupies on this rank: a DTensor's local shard, any other tensor itself."""
    dtensor = _dtensor_class()
    if dtensor is not None and isinstance(t, dtensor):
        with torch.no_grad():
            return t.to_local()
    return t


class Storage:
    """One storage's life: size (rounded as the target allocates), category, birth and death events."""

    __slots__ = ("nbytes", "category", "ref", "__weakref__")

    def __init__(self, nbytes: int, category: str):
        self.nbytes, self.category, self.ref = nbytes, category, None


class LayerHooks:
    """Which layer is running: global forward hooks keep a stack of layer names; in backward, the
    autograd node now running names the layer whose forward made it (by sequence number)."""

    def __init__(self, names: dict[nn.Module, str]):
        self.names = names
        self.stack: list[str] = [""]
        self._seqs: list[int] = []
        self._owners: list[str] = []
        self._handles: list = []
        self.on_change = None  # called after a layer starts and after it ends

    def attach(self) -> None:
        names, stack, seqs, owners = self.names, self.stack, self._seqs, self._owners

        def pre(module, args):
            name = names.get(module)
            if name is not None:
                stack.append(name)
                seqs.append(get_sequence_nr())
                owners.append(name)
                if self.on_change is not None:
                    self.on_change()

        def post(module, args, output):
            if names.get(module) is not None and len(stack) > 1:
                if self.on_change is not None:  # the layer's last moment, its own name
                    self.on_change()
                stack.pop()
                seqs.append(get_sequence_nr())
                owners.append(stack[-1])

        self._handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]

    def reset(self) -> None:
        """Back to no layer running. An activation-checkpointed block recomputed in backward
        (``torch.utils.checkpoint``, non-reentrant) stops its forward early by raising once the
        tensors backward needs exist, so its layers' post hooks never run: their names would stay
        on the stack into the next forward."""
        del self.stack[1:]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def forward_layer(self) -> str:
        return self.stack[-1]

    def backward_layer(self) -> str:
        node = current_autograd_node()
        if node is None:
            return ""
        i = bisect_right(self._seqs, sequence_nr_of(node)) - 1
        return self._owners[i] if 0 <= i < len(self._owners) else ""


class MemoryTracker(TorchDispatchMode):
    """Records storages created and freed on ``device_type`` while active (``with tracker:``).

    ``events`` holds (storage, bytes added or removed, phase, layer) in order; ``mark()`` starts
    the part of the run whose peak is reported (the second training step). ``op_categories``
    names the category of an op's outputs and ``out=`` tensors (FSDP2's communication buffers);
    ``resizes`` follows ``UntypedStorage.resize_`` of the storages seen (FSDP2)."""

    def __init__(self, device_type: str, layers: LayerHooks, block: int = 1):
        super().__init__()
        self.op_categories: dict = {}
        self.resizes = False
        self._following = False  # resize_ followed through the storage_resize swap
        self.device_type = device_type
        self.block = block
        self.layers = layers
        self.phase = "setup"
        self.live: dict[int, Storage] = {}
        self.events: list[tuple[Storage, int, str, str]] = []  # (storage, +bytes/-bytes, phase, layer)
        self.saved: dict[str, int] = {}  # layer -> bytes saved for backward (each storage once)
        self._saved_seen: set[int] = set()
        self.start = 0
        self.math_attention = False  # scaled_dot_product_attention ran its math path (softmax kept)
        self._marker = Storage(0, "temporary")
        layers.on_change = self.touch

    def enter(self, phase: str) -> None:
        """The step moves on to ``phase`` (forward, loss, backward, optimizer, zero_grad, setup)."""
        self.phase = phase
        if phase != "backward":
            self.layers.reset()
        self.touch()

    def touch(self) -> None:
        """A zero-byte event: the live bytes as a layer starts or ends (a layer that allocates
        nothing, an in-place ReLU, still has the bytes live while it ran)."""
        self.events.append((self._marker, 0, self.phase, self.where()))

    # ------------------------------------------------------------------ recording
    def where(self) -> str:
        if self.phase == "forward":
            return self.layers.forward_layer()
        if self.phase == "backward":
            return self.layers.backward_layer()
        return ""

    def _round(self, n: int) -> int:
        return -(-n // self.block) * self.block if self.block > 1 else n

    def track(self, t, category: str = "temporary") -> Storage | None:
        """The record of ``t``'s storage (made now if new); ``category`` replaces a temporary one."""
        if not isinstance(t, torch.Tensor):
            return None
        return self._track(local_tensor(t), category)

    def _track(self, t: torch.Tensor, category: str) -> Storage | None:
        if t.device.type != self.device_type:
            return None
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse, nested: no one storage
            return None
        record = self.live.get(id(st))
        if record is None:
            record = self._born(st, category)
        elif category != "temporary" and record.category not in _FIXED:
            record.category = category
        return record

    def _born(self, st, category: str) -> Storage:
        key = id(st)
        record = Storage(self._round(st.nbytes()), category)
        live, events, me = self.live, self.events, self

        def freed(_ref, key=key, record=record):
            if live.get(key) is record:
                del live[key]
                events.append((record, -record.nbytes, me.phase, me.where()))

        record.ref = weakref.ref(st, freed)
        self.live[key] = record
        self.events.append((record, record.nbytes, self.phase, self.where()))
        return record

    def _resized(self, st) -> None:
        """A storage's size changed in place (FSDP2 frees and refills its unsharded parameters so)."""
        if not isinstance(st, torch.UntypedStorage) or st.device.type != self.device_type:
            return
        record = self.live.get(id(st))
        if record is None:
            self._born(st, "temporary")
            return
        nbytes = self._round(st.nbytes())
        if nbytes != record.nbytes:
            delta, record.nbytes = nbytes - record.nbytes, nbytes
            self.events.append((record, delta, self.phase, self.where()))

    def _follow_resize(self, resize, st, size):
        """UntypedStorage.resize_ on this thread while the tracker runs (torch's MemTracker
        follows it the same way)."""
        out = resize(st, size)
        self._resized(st)
        return out

    def __enter__(self):
        if self.resizes and not self._following:
            storage_resize.install(self._follow_resize)
            self._following = True
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            if self._following:
                storage_resize.uninstall(self._follow_resize)
                self._following = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if types:  # a DTensor's op: let it run as its local ops, which come back here one by one
            dtensor = _dtensor_class()
            if dtensor is not None and any(issubclass(t, dtensor) for t in types):
                return NotImplemented
        out = fast_meta.run(func, args, kwargs or {})
        if func is safe_softmax:  # the math path of scaled_dot_product_attention ran
            self.math_attention = True
        category = self.op_categories.get(func, "temporary") if self.op_categories else "temporary"
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):  # an op's output is a plain tensor (DTensors ran as local ops)
                self._track(t, category)
        if category != "temporary" and kwargs and "out" in kwargs:
            for t in tree_leaves(kwargs["out"]):
                self.track(t, category)
        return out

    def pack(self, t):
        """saved_tensors_hooks' pack: what autograd keeps for backward is an activation."""
        record = self.track(t, "activations")
        if record is not None and record.category == "activations" and id(record) not in self._saved_seen:
            self._saved_seen.add(id(record))
            layer = self.layers.forward_layer()
            self.saved[layer] = self.saved.get(layer, 0) + record.nbytes
        return t

    @staticmethod
    def unpack(t):
        return t

    def mark(self) -> None:
        """From here on is the reported part: the peak and the per-layer figures."""
        self.start = len(self.events)
        self._saved_seen.clear()
        self.saved.clear()
