"""MemoryReport: the predicted (or measured) memory of one step, made once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..report import render
from ..values import Value

CATEGORIES = ("parameters", "buffers", "gradients", "optimizer_state", "activations", "temporary", "inputs")


@dataclass(frozen=True)
class LayerMemory:
    """One layer: bytes autograd saved for backward while it ran, its descendants' included as
    Params and MACs include them (each storage is charged once, to the innermost layer running,
    so a subtree's sum counts none twice), the part its own ops saved, and the step's live bytes
    at their highest while it ran forward and backward (its children's time included)."""

    name: str
    type: str
    depth: int
    saved_bytes: int  # this layer's ops and its descendants'
    forward_peak: int
    backward_peak: int
    own_saved_bytes: int | None = None  # this layer's own ops only (not its children's); None: not told


@dataclass(frozen=True)
class TimelinePoint:
    """Live bytes after one allocation or free: where it happened and the bytes per category."""

    index: int
    phase: str  # setup, forward, loss, backward, optimizer, zero_grad
    layer: str
    total: int
    by_category: tuple[int, ...]  # in CATEGORIES order

    def to_dict(self) -> dict:
        return {"index": self.index, "phase": self.phase, "layer": self.layer, "total": self.total,
                **dict(zip(CATEGORIES, self.by_category))}


@dataclass(frozen=True)
class MemoryReport(render.Rendered, Value):
    """The peak memory of one step (the second training step: the optimizer state exists)."""

    model: str
    inputs: str
    batch_size: int
    mode: str  # "train" or "eval"
    dtype: str  # the precision of the step (autocast for a mixed-precision training step)
    autocast: bool
    optimizer: str | None
    device: str  # where the step ran: meta (predicted) or a real device (measured)
    target: str  # the device whose allocator the sizes follow
    peak_bytes: int
    by_category: dict[str, int]
    peak_at: str
    layers: tuple[LayerMemory, ...]
    timeline: tuple[TimelinePoint, ...] = field(repr=False)
    notes: tuple[str, ...] = ()
    predictor: Callable[[int], int] | None = field(default=None, repr=False, compare=False)
    fit_budget: str | None = None  # with_fit: the budget asked for (a size or a GPU)
    fit_bytes: int | None = None
    fit_batch: int | None = None  # the largest batch whose predicted peak fits in fit_bytes (0: none)
    fit_batch_1_bytes: int | None = None  # when not even batch 1 fits: batch 1's predicted peak
    # a rank's step (memory_of_parallel_step): the most each category held at any moment of the step
    largest_by_category: dict[str, int] | None = None

    def __getstate__(self):
        """Pickled without ``predictor`` (it runs the user's model, which a pickle does not carry)."""
        return {**self.__dict__, "predictor": None}

    def __copy__(self):  # a value: a copy in this process is the report itself, predictor and all
        return self

    def __deepcopy__(self, memo):
        return self

    def with_fit(self, label: str, budget_bytes: int) -> "MemoryReport":
        """A new report that also names the largest batch fitting ``budget_bytes`` (``max_batch``),
        and when none does (0), what batch 1 needs: a budget too small says by how much."""
        from dataclasses import replace
        largest = self.max_batch(budget_bytes)
        needs = None if largest else self.peak_bytes if self.batch_size == 1 else self.predictor(1)
        return replace(self, fit_budget=label, fit_bytes=int(budget_bytes), fit_batch=largest,
                       fit_batch_1_bytes=needs)

    @property
    def saved_bytes(self) -> int:
        """Bytes autograd saved for backward by the layers in the step (0 for inference): each
        layer's own, so none is counted twice."""
        return sum(layer.own_saved_bytes or 0 for layer in self.layers)

    def layer(self, name: str) -> LayerMemory:
        for record in self.layers:
            if record.name == name:
                return record
        raise KeyError(f"no layer named '{name}'")

    def max_batch(self, budget_bytes: int, *, limit: int = 1 << 20) -> int:
        """The largest batch whose predicted peak fits in ``budget_bytes`` (0 if not even 1 fits).

        The peak is near linear in the batch: two predictions give the line, the line gives a
        guess, and predictions around the guess confirm it (a few predictions in all)."""
        if self.predictor is None:
            raise ValueError("this report cannot predict other batch sizes: its inputs were fixed, or it was "
                             "unpickled (predicting runs the model, which a pickle does not carry)")
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, (int, float)) or budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be a positive number of bytes, got {budget_bytes!r}")
        peaks: dict[int, int] = {self.batch_size: self.peak_bytes}

        def peak(b: int) -> int:
            if b not in peaks:
                peaks[b] = self.predictor(b)
            return peaks[b]

        def line(b0: int, b1: int) -> int:  # where the line through two predictions meets the budget
            slope = max((peak(b1) - peak(b0)) / (b1 - b0), 1.0)
            return int(min(limit, max(1, b0 + (budget_bytes - peak(b0)) // slope)))

        b0 = self.batch_size
        guess = line(b0, b0 + max(b0, 1))
        for _ in range(3):  # secant steps: the line through the last two predictions
            if guess == b0:
                break
            b0, guess = guess, line(b0, guess) if guess != b0 else guess
            if guess in peaks:
                break
        if guess == 1 and peak(1) > budget_bytes:
            return 0
        lo, hi = 1, None  # lo fits; hi (if known) does not; gallop from the guess, then bisect
        step = 1
        if peak(guess) <= budget_bytes:
            lo = guess
            while hi is None:
                nxt = min(limit, lo + step)
                if nxt == lo:
                    return lo
                if peak(nxt) <= budget_bytes:
                    lo, step = nxt, step * 2
                else:
                    hi = nxt
        else:
            hi = guess
            while True:
                nxt = max(1, hi - step)
                if peak(nxt) <= budget_bytes:
                    lo = nxt
                    break
                if nxt == 1:
                    return 0
                hi, step = nxt, step * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if peak(mid) <= budget_bytes:
                lo = mid
            else:
                hi = mid
        return lo

    # ------------------------------------------------------------------ renderings
    def to_dict(self) -> dict:
        return {"model": self.model, "inputs": self.inputs, "batch_size": self.batch_size, "mode": self.mode,
                "dtype": self.dtype, "autocast": self.autocast, "optimizer": self.optimizer,
                "device": self.device, "target": self.target, "peak_bytes": self.peak_bytes,
                "by_category": dict(self.by_category), "peak_at": self.peak_at, "saved_bytes": self.saved_bytes,
                "layers": [{"name": r.name, "type": r.type, "depth": r.depth, "saved_bytes": r.saved_bytes,
                            "own_saved_bytes": r.own_saved_bytes, "forward_peak": r.forward_peak,
                            "backward_peak": r.backward_peak}
                           for r in self.layers],
                "fit": None if self.fit_budget is None else {"budget": self.fit_budget, "bytes": self.fit_bytes,
                                                              "largest_batch": self.fit_batch,
                                                              "batch_1_bytes": self.fit_batch_1_bytes},
                "notes": list(self.notes),
                **({} if self.largest_by_category is None else
                   {"largest_by_category": dict(self.largest_by_category)})}
