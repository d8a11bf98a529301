"""The counted first step of a tracked loop: the library's dispatch counter over the user's real
step (forward, backward and what runs around them), and on the CPU the memory tracker beside it."""

from __future__ import annotations

import torch
from torch import nn

from ..counting.attribution import Accumulator, LayerTracker
from ..counting.dispatch import CountingMode
from ..memory.tracker import LayerHooks, MemoryTracker
from ..torch_internals import current_autograd_node

OUTSIDE = "(outside the model)"  # the accumulator of ops no layer of the model ran: loss, optimizer, clipping


class _StepCounter(CountingMode):
    """The counter over a real step: an op belongs to the backward exactly when autograd is
    running one of its nodes, so each op says which pass it is (the user's loop calls backward)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.backward = current_autograd_node() is not None
        return super().__torch_dispatch__(func, types, args, kwargs)


class _FirstStepCount:
    """The dispatch counter (and, on the CPU, the memory tracker) over the first step.

    ``attach`` puts the layer hooks on before the step's first forward (so the model's own call
    is seen from its start), ``start`` enters the modes, ``stop`` leaves them. Ops no layer of
    the model ran (the loss, the optimizer) go to an accumulator of their own.
    """

    def __init__(self, model: nn.Module, cpu_memory: bool):
        self.outside = Accumulator(OUTSIDE, "")
        self.accumulators = {m: Accumulator(n, type(m).__name__) for n, m in model.named_modules()}
        self.layers = LayerTracker(self.accumulators, self.outside, track_backward=True)
        self.counter = _StepCounter(self.layers)
        self.memory = MemoryTracker("cpu", LayerHooks({})) if cpu_memory else None
        self.started = False
        self._entered: list = []

    def attach(self) -> None:
        self.layers.attach()

    def start(self, held: list[torch.Tensor]) -> None:
        """Enter the modes; ``held``: tensors live before the step (weights, gradients, optimizer state)."""
        self.started = True
        if self.memory is not None:
            self.note(held, "parameters")
        for mode in (self.counter, self.memory):
            if mode is not None:
                mode.__enter__()
                self._entered.append(mode)

    def note(self, tensors, category: str = "inputs") -> None:
        """Tensors that were live before the memory tracker saw them (the batch)."""
        if self.memory is not None:
            for t in tensors:
                self.memory.track(t, category)

    def stop(self) -> None:
        try:
            while self._entered:
                self._entered.pop().__exit__(None, None, None)
        finally:
            self.layers.detach()

    def flops(self) -> tuple[int, int, int]:
        """(forward, backward) FLOPs of the model's layers, and the FLOPs outside them."""
        fwd = sum(a.flops for a in self.accumulators.values())
        bwd = sum(a.bwd_flops for a in self.accumulators.values())
        return fwd, bwd, self.outside.flops + self.outside.bwd_flops

    def peak_bytes(self) -> int | None:
        """The most bytes live at once among the storages the memory tracker knew in the step."""
        if self.memory is None:
            return None
        total = peak = 0
        for _, delta, _, _ in self.memory.events:  # (storage, bytes added or removed, phase, layer)
            total += delta
            peak = max(peak, total)
        self.memory.live.clear()  # later frees are not the step's
        return peak

    def uncounted(self) -> dict[str, int]:
        """Ops without a cost formula; the profiler's markers (``optimizer.step`` opens a
        record_function) are not computation and are left out."""
        return {str(op): calls for op, calls in self.counter.uncounted.items()
                if not str(op).startswith("profiler.")}


