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
"""

from __future__ import annotations

import weakref
from bisect import bisect_right

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..torch_internals import (TorchDispatchMode, current_autograd_node, get_sequence_nr, safe_softmax,
                               sequence_nr_of, tree_leaves)

_FIXED = {"parameters", "buffers", "inputs"}  # known up front, never re-categorised
CUDA_BLOCK = 512  # the CUDA caching allocator rounds every request up to a multiple of this


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

    ``events`` holds (storage, +1 or -1, phase, layer) in order; ``mark()`` starts the part of
    the run whose peak is reported (the second training step)."""

    def __init__(self, device_type: str, layers: LayerHooks, block: int = 1):
        super().__init__()
        self.device_type = device_type
        self.block = block
        self.layers = layers
        self.phase = "setup"
        self.live: dict[int, Storage] = {}
        self.events: list[tuple[Storage, int, str, str]] = []
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
        self.events.append((self._marker, 1, self.phase, self.where()))

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
        if not isinstance(t, torch.Tensor) or t.device.type != self.device_type:
            return None
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse, nested: no one storage
            return None
        key = id(st)
        record = self.live.get(key)
        if record is None:
            record = Storage(self._round(st.nbytes()), category)
            live, events, me = self.live, self.events, self

            def freed(_ref, key=key, record=record):
                if live.get(key) is record:
                    del live[key]
                    events.append((record, -1, me.phase, me.where()))

            record.ref = weakref.ref(st, freed)
            self.live[key] = record
            self.events.append((record, 1, self.phase, self.where()))
        elif category != "temporary" and record.category not in _FIXED:
            record.category = category
        return record

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is safe_softmax:  # the math path of scaled_dot_product_attention ran
            self.math_attention = True
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.track(t)
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
