"""Module hooks that say which layer is running, so each op is charged to it.

Forward: a pre-hook pushes the layer's accumulator, a post-hook pops it; the counter
charges the top of the stack. Backward runs outside any module, so while the forward
records autograd sequence numbers, the tracker notes which layer was innermost from
each number on; an autograd node's sequence number then names the layer that made it.
"""

from __future__ import annotations

from bisect import bisect_right

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..torch_internals import current_autograd_node, get_sequence_nr, sequence_nr_of


class Accumulator:
    """One layer's self cost (ops it ran itself, not its children's), forward and backward."""

    __slots__ = ("name", "type", "macs", "flops", "bytes", "bwd_macs", "bwd_flops", "bwd_bytes",
                 "calls", "output_shape")

    def __init__(self, name: str, type_name: str):
        self.name, self.type = name, type_name
        self.macs = self.flops = self.bytes = 0
        self.bwd_macs = self.bwd_flops = self.bwd_bytes = 0
        self.calls = 0
        self.output_shape = None


def shape_of(value):
    """A printable shape for a module output: a tuple, a list of them, "None", or a type name.

    A nested tensor (the fast path of ``nn.TransformerEncoder`` with a padding mask makes
    them) has no ``.shape`` in the strided layout: it is described as a string,
    "nested(2, 4..6, 32)", with each ragged dimension as its smallest..largest size.
    """
    if isinstance(value, torch.Tensor):
        if value.is_nested:
            return nested_shape(value)
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return [shape_of(v) for v in value]
    if isinstance(value, dict):
        return {k: shape_of(v) for k, v in value.items()}
    return "None" if value is None else type(value).__name__


def nested_shape(value: torch.Tensor) -> str:
    """"nested(B, lo..hi, ...)": a nested tensor's component count and each dimension's size range."""
    try:
        shapes = [tuple(t.shape) for t in value.unbind()]
    except Exception:  # a layout whose components cannot be listed here: say what it is
        return "nested"
    if not shapes:
        return "nested(0)"
    dims = []
    for sizes in zip(*shapes):
        lo, hi = min(sizes), max(sizes)
        dims.append(str(lo) if lo == hi else f"{lo}..{hi}")
    return f"nested({', '.join([str(len(shapes)), *dims])})"


class LayerTracker:
    """Tracks the running layer through global forward hooks; ``detach`` removes them."""

    def __init__(self, modules: dict[nn.Module, Accumulator], root: Accumulator, track_backward: bool):
        self.accumulators = modules
        self.root = root
        self.stack: list[Accumulator] = [root]
        self.arg_stack: list = [()]
        self.track_backward = track_backward
        self._events_seq: list[int] = []
        self._events_acc: list[Accumulator] = []
        self._node_cache: dict[int, Accumulator] = {}
        self._handles: list = []

    # ------------------------------------------------------------------ hooks
    def attach(self) -> None:
        """Two global module hooks (cheaper than two per module); foreign modules are ignored."""
        self._handles = [register_module_forward_pre_hook(self._pre_hook()),
                         register_module_forward_hook(self._post_hook())]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _pre_hook(self):
        accumulators, stack, arg_stack = self.accumulators, self.stack, self.arg_stack
        seqs, owners = self._events_seq, self._events_acc
        track = self.track_backward

        def pre_hook(module, args):
            acc = accumulators.get(module)
            if acc is None:
                return
            stack.append(acc)
            arg_stack.append(args)
            acc.calls += 1
            if track:
                seqs.append(get_sequence_nr())
                owners.append(acc)

        return pre_hook

    def _post_hook(self):
        accumulators, stack, arg_stack = self.accumulators, self.stack, self.arg_stack
        seqs, owners = self._events_seq, self._events_acc
        track = self.track_backward

        def post_hook(module, args, output):
            acc = accumulators.get(module)
            if acc is None:
                return
            stack.pop()
            arg_stack.pop()
            if acc.output_shape is None:
                acc.output_shape = shape_of(output)
            if track:
                seqs.append(get_sequence_nr())
                owners.append(stack[-1])

        return post_hook

    # ------------------------------------------------------------------ queries
    def failing_layer(self) -> tuple[Accumulator, tuple]:
        """The innermost layer still running (after a forward raised) and its positional args."""
        return self.stack[-1], self.arg_stack[-1]

    def backward_owner(self) -> Accumulator:
        """The layer whose forward created the autograd node now running backward."""
        node = current_autograd_node()
        if node is None:
            return self.root
        seq = sequence_nr_of(node)
        acc = self._node_cache.get(seq)
        if acc is None:
            i = bisect_right(self._events_seq, seq) - 1
            acc = self._events_acc[i] if 0 <= i < len(self._events_acc) - 1 else self.root
            self._node_cache[seq] = acc
        return acc
