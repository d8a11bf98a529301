"""``track()``: the figures of a user's own training loop, step by step.

The first step's FLOPs are counted once, by the library's dispatch counter over that real step
(forward, backward and what runs around them); every step is timed with the timing clocks (CUDA
events on a GPU, ``perf_counter_ns`` on the CPU); and the steps become samples/s, tokens/s,
achieved FLOP/s, MFU, peak memory and, on a GPU with NVML, energy per step: one frozen
``TrackReport``. The Lightning and transformers callbacks (``torchprof_lab.integrations``) drive
the same ``Tracker`` from their trainers' hooks. docs/training_callbacks.md says what each
figure means.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ..dtypes import precision
from ..errors import ProfilerError
from ..hardware.ceiling import ceiling_for
from ..hardware.cpu import cpu_info
from ..hardware.nvml import handle_for, load_nvml
from ..inputs import infer_batch
from ..model_state import floating_dtype, model_device
from ..timing.loop import clock_for
from ..timing.stats import LatencyStats
from ..torch_internals import tree_leaves
from .first_step import _FirstStepCount
from .result import TrackFigures, TrackReport

FIRST_STEP_NOTE = ("the first step is counted (the dispatch counter runs inside it) and is left out of every "
                   "time-based figure")
RESOLVE_EVERY = 256  # CUDA: steps between readings of the completed steps' events (no synchronisation)


class _Step:
    """One step as it runs: its clock marks, batch, tokens, memory and energy readings."""

    __slots__ = ("index", "begin", "end", "seconds", "samples", "tokens", "unknown_batch", "given",
                 "memory", "energy_begin", "joules")

    def __init__(self, index: int, begin, energy):
        self.index, self.begin, self.end, self.seconds = index, begin, None, None
        self.samples = self.tokens = 0
        self.unknown_batch = False
        self.given = False  # the batch was handed over by a trainer's hook: forwards do not add to it
        self.memory = None
        self.energy_begin, self.joules = energy, None


def _tokens_of(args, kwargs) -> int | None:
    """Tokens in a call: batch x length of its first 2-D int64 tensor (token ids), padding included."""
    for t in tree_leaves((args, kwargs)):
        if isinstance(t, torch.Tensor) and t.dim() == 2 and t.dtype == torch.int64 and not t.is_nested:
            return t.shape[0] * t.shape[1]
    return None


def _call_of(batch) -> tuple[tuple, dict]:
    """A trainer's batch as call arguments: a dict is keyword arguments, a list or tuple positional
    ones (a DataLoader's [inputs, targets]), anything else one argument."""
    if isinstance(batch, dict):
        return (), batch
    return (tuple(batch) if isinstance(batch, (list, tuple)) else (batch,)), {}


def _check_count(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


class Tracker:
    """Counts the first step of a training loop and times every step; ``report()`` makes the
    figures. Made by ``track()`` or by a trainer callback; the model and optimizer get hooks
    only while it is open (``close()`` removes them, also after the loop raised)."""

    def __init__(self, model: nn.Module, optimizer=None, tokens_per_sample: int | None = None, *,
                 batch_size: int | None = None, dtype=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
        _check_count("tokens_per_sample", tokens_per_sample)
        _check_count("batch_size", batch_size)
        self.model, self.optimizer = model, optimizer
        self.tokens_per_sample, self.batch_size = tokens_per_sample, batch_size
        self.device = model_device(model)
        self.dtype = precision(dtype if dtype is not None else floating_dtype(model)).name
        self._clock = clock_for(self.device)
        self._cuda = self.device.type == "cuda"
        self._nvml = self._handle = None
        self._hooks: list = []
        self._open: _Step | None = None
        self._done: list[_Step] = []
        self._windows: list[TrackFigures] = []
        self._window_from = 0
        self._count: _FirstStepCount | None = None
        self._counted: dict | None = None  # what the count found, once a step that ran the model ended
        self._counted_step = 0  # that step's index: it and the steps before it are not timed
        self._peak: tuple[float | None, str] | None = None
        self._notes: list[str] = []
        self._state = "new"
        self._final: TrackReport | None = None

    # ------------------------------------------------------------------ life
    def open(self) -> "Tracker":
        """Put the hooks on: the model's forward pre-hook, and the optimizer's step post-hook."""
        if self._state != "new":
            raise ProfilerError("a Tracker is opened once; track() or a callback makes a new one per run")
        self._state = "open"
        self._hooks.append(self.model.register_forward_pre_hook(self._on_forward, with_kwargs=True))
        if self.optimizer is not None:
            self._hooks.append(self.optimizer.register_step_post_hook(self._on_optimizer_step))
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            self._nvml = load_nvml()
            if self._nvml is not None:
                try:
                    self._handle = handle_for(self._nvml, self.device.index or 0)
                except Exception:  # noqa: BLE001 - no handle: no energy figures
                    self._nvml = None
        return self

    def close(self, error: BaseException | None = None) -> TrackReport:
        """Remove every hook and leave the counter; a step still open is left out. The final
        report, also kept for ``report()``."""
        if self._state == "closed":
            return self._final
        try:
            if self._count is not None:
                self._count.stop()
                self._count = None
        finally:
            for handle in self._hooks:
                handle.remove()
            self._hooks.clear()
            self._state = "closed"
        if self._open is not None and error is not None:
            self._notes.append(f"the loop raised {type(error).__name__} in step {self._open.index}: that step is "
                               f"left out")
        self._open = None
        self._final = self._report()
        return self._final

    # ------------------------------------------------------------------ step boundaries
    def step(self) -> None:
        """The end of a training step and the start of the next: call it once per step in a loop
        without an optimizer passed to ``track()`` (with one, its ``step()`` marks the steps)."""
        if self.optimizer is not None:
            raise ProfilerError("the optimizer's step() already marks the steps: call tracker.step() only in a "
                                "loop tracked without an optimizer")
        self.end_step()
        self.begin_step()

    def begin_step(self, batch=None) -> None:
        """A step starts. ``batch``: what a trainer hands its step (the samples are its batch,
        the model's forward calls then add nothing); None: the forward calls in the step say it."""
        if self._state != "open":
            raise ProfilerError("this Tracker is not open: steps are tracked inside track() or a callback")
        if self._open is not None:  # a step that never ended (a trainer skipped its end hook): it ends now
            self.end_step()
        step = _Step(len(self._done) + 1, self._clock.start(), self._energy())
        if batch is not None:
            step.given = True
            self._add_batch(step, *_call_of(batch))
        self._open = step
        if self._counted is None and self._count is None:  # the counted step is the first to run the model
            self._count = _FirstStepCount(self.model, cpu_memory=self.device.type == "cpu")
            self._count.attach()
            if batch is not None:  # a trainer's step: count from its start (its forward may be a submodule's)
                self._count.start(self._held())
                self._count.note(tree_leaves(batch))

    def end_step(self) -> None:
        """The step in progress ends (nothing to end: nothing happens)."""
        step = self._open
        if step is None:
            return
        step.end = self._clock.start()
        if self._cuda:
            step.memory = torch.cuda.max_memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        energy = self._energy()
        if energy is not None and step.energy_begin is not None:
            step.joules = (energy - step.energy_begin) / 1e3
        self._open = None
        self._done.append(step)
        if self._count is not None:
            self._finish_count(step)
        if self._cuda and step.index % RESOLVE_EVERY == 0:
            self._resolve(self._done[-2 * RESOLVE_EVERY:], wait=False)

    def _on_optimizer_step(self, optimizer, args, kwargs) -> None:
        self.end_step()
        self.begin_step()

    def _on_forward(self, module, args, kwargs):
        step = self._open
        if step is None:  # a forward between steps (a trainer's validation)
            return None
        if not step.given:
            self._add_batch(step, args, kwargs)
        count = self._count
        if count is not None:
            if not count.started:
                count.start(self._held())
            count.note(tree_leaves((args, kwargs)))
        return None

    def _add_batch(self, step: _Step, args, kwargs) -> None:
        if self.batch_size is not None:
            step.samples = self.batch_size
        else:
            found = infer_batch(args, kwargs)
            if found is None:
                step.unknown_batch = True
            else:
                step.samples += found
        tokens = None if self.tokens_per_sample is not None else _tokens_of(args, kwargs)
        if tokens is not None:
            step.tokens += tokens

    def _held(self) -> list[torch.Tensor]:
        """Tensors live before the first step: the model's weights and buffers, their gradients and
        the optimizer's state."""
        held = [*self.model.parameters(), *self.model.buffers()]
        held += [p.grad for p in self.model.parameters() if p.grad is not None]
        if self.optimizer is not None:
            held += [v for state in self.optimizer.state.values() for v in state.values()
                     if isinstance(v, torch.Tensor)]
        return held

    def _finish_count(self, step: _Step) -> None:
        count, self._count = self._count, None
        count.stop()
        if not count.started:  # the model did not run in this step: the next step is counted instead
            return
        self._counted_step = step.index
        fwd, bwd, other = count.flops()
        self._counted = {"forward": fwd, "backward": bwd, "other": other, "samples": step.samples,
                         "tokens": step.tokens, "unknown": step.unknown_batch, "memory": count.peak_bytes(),
                         "uncounted": count.uncounted()}
        if not bwd:
            self._notes.append("no backward ran in the counted step: the FLOPs per step are the forward's")

    def _energy(self) -> float | None:
        """NVML's total energy counter in mJ (Volta and later); None without NVML or counter."""
        if self._nvml is None:
            return None
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:  # noqa: BLE001 - NotSupported on older GPUs
            return None

    # ------------------------------------------------------------------ figures
    @property
    def steps(self) -> int:
        """Steps completed so far."""
        return len(self._done)

    def window(self) -> TrackFigures | None:
        """The figures of the steps completed since the last ``window()`` (a logging window), kept
        in the report's ``windows``; None when no step completed since."""
        steps = self._done[self._window_from:]
        if not steps:
            return None
        self._window_from = len(self._done)
        figures = self._figures(steps)
        self._windows.append(figures)
        return figures

    def report(self) -> TrackReport:
        """The figures so far (after ``close()``: the final ones)."""
        return self._final if self._final is not None else self._report()

    def _resolve(self, steps: list[_Step], wait: bool = True) -> None:
        """Seconds of each step, its clock marks then dropped (a CUDA event pair per step would
        pile up over a long run). CUDA: waits once, for the last step's end event; ``wait=False``
        reads only the steps whose events have completed, in order, and never waits."""
        pending = [s for s in steps if s.seconds is None]
        if not pending:
            return
        if self._cuda and wait:
            pending[-1].end.synchronize()  # the events before it have completed too
        for s in pending:
            if self._cuda and not wait and not s.end.query():
                break
            s.seconds = self._clock.between(s.begin, s.end)
            s.begin = s.end = None

    def _peak_flops(self) -> tuple[float | None, str]:
        """The device's peak FLOP/s for the dtype, and where it comes from (looked up once)."""
        if self._peak is None:
            try:
                if self._cuda:
                    ceiling = ceiling_for(self.device, self.dtype)
                    self._peak = (None, "this GPU is not in the table and NVML is missing") if ceiling is None \
                        else (ceiling.peak_flops, ceiling.source)
                elif self.device.type == "cpu":
                    info = cpu_info()
                    peak = info.peak(self.dtype)
                    self._peak = (peak.value, f"{peak.formula}; clock: {info.frequency_source}")
                else:
                    self._peak = (None, f"no peak known for {self.device.type}")
            except ValueError as exc:  # a dtype the device's table has no peak for
                self._peak = (None, str(exc))
        return self._peak

    def _figures(self, steps: list[_Step]) -> TrackFigures:
        self._resolve(steps)
        counted = self._counted or {}
        flops = counted.get("forward", 0) + counted.get("backward", 0) if counted else None
        timed = [s for s in steps if s.index > max(self._counted_step, 1)]
        seconds = sum(s.seconds for s in timed)
        known = timed and seconds > 0
        samples = None if any(s.unknown_batch for s in timed) else sum(s.samples for s in timed)
        per_step = [self._tokens(s) for s in timed]
        tokens = sum(per_step) if timed and all(per_step) else None
        achieved = None
        if flops and known:
            achieved = sum(flops * self._scale(s, counted) for s in timed) / seconds
        peak = self._peak_flops()[0] if achieved else None
        if self._cuda:
            readings = [s.memory for s in steps if s.memory is not None]
            memory = max(readings) if readings else None
        else:
            memory = counted.get("memory")
        joules = [s.joules for s in timed]
        energy = sum(joules) if timed and all(j is not None for j in joules) else None
        return TrackFigures(
            first_step=steps[0].index, last_step=steps[-1].index, timed_steps=len(timed),
            latency=LatencyStats.of([s.seconds for s in timed]) if timed else None,
            samples_per_s=samples / seconds if known and samples else None,
            tokens_per_s=tokens / seconds if known and tokens else None,
            flops_per_step=flops or None, flops_per_s=achieved,
            mfu=achieved / peak if achieved and peak else None, peak_memory_bytes=memory,
            joules_per_step=energy / len(timed) if energy is not None else None,
            mean_power_w=energy / seconds if energy is not None and known else None)

    def _tokens(self, step: _Step) -> int | None:
        if self.tokens_per_sample is not None:
            return None if step.unknown_batch else step.samples * self.tokens_per_sample
        return step.tokens or None

    def _scale(self, step: _Step, counted: dict) -> float:
        """A step's FLOPs over the counted step's: by its inferred tokens where both have them (the
        sequence length may change), else by its samples (a smaller last batch does less work); 1
        where neither is known."""
        if self.tokens_per_sample is None and step.tokens and counted.get("tokens"):
            return step.tokens / counted["tokens"]
        if step.samples and counted.get("samples") and not step.unknown_batch and not counted.get("unknown"):
            return step.samples / counted["samples"]
        return 1.0

    def _samples_source(self) -> str:
        if self.batch_size is not None:
            return f"batch_size={self.batch_size} (given)"
        if any(s.given for s in self._done):
            return "the first dimension of the batch the trainer hands each step"
        return "the first dimension of the inputs of the model's forward calls in each step, summed"

    def _report(self) -> TrackReport:
        counted = self._counted or {}
        done = self._done
        if done:
            self._resolve(done)
            summary = self._figures(done)
        else:
            summary = TrackFigures(1, 0, 0, None, None, None, None, None, None, None, None, None)
        peak, peak_source = self._peak_flops() if summary.flops_per_s else (None, "not needed: no FLOP/s measured")
        notes = [FIRST_STEP_NOTE if self._counted_step <= 1 else
                 f"step {self._counted_step}, the first that ran the model, is counted (the dispatch counter runs "
                 f"inside it): it and the steps before it are left out of every time-based figure", *self._notes]
        if done and self._counted is None:
            notes.append("the model's forward ran in no step: nothing was counted")
        if not done:
            notes.append("no step completed: pass optimizer= to track(), or call tracker.step() after each step")
        elif not summary.timed_steps:
            notes.append("no step after the counted one completed: no step was timed")
        if counted.get("unknown"):
            notes.append("the batch of the counted step could not be told (inputs whose first dimensions differ): "
                         "pass batch_size=")
        if summary.latency is not None:  # the timing rules' warnings: noise and drift (docs/timing.md)
            notes.extend("step times: " + warning.replace("; a longer --warmup-time may settle it", "")
                         for warning in summary.latency.warnings if not warning.startswith("p99"))
        if summary.flops_per_s is not None:
            notes.append("FLOP/s: each timed step's FLOPs are the counted step's, scaled by its tokens (or samples) "
                         "over the counted step's")
        tokens_per_sample = self.tokens_per_sample
        if self.tokens_per_sample is not None:
            tokens_source = f"tokens_per_sample={self.tokens_per_sample} (given)"
        elif counted.get("tokens"):
            tokens_per_sample = counted["tokens"] // max(counted.get("samples") or 1, 1)
            tokens_source = ("inferred from each step's first 2-D int64 input (token ids): its second dimension, "
                             "padding included")
        else:
            tokens_source = None
        if self._cuda:
            memory_source = ("torch.cuda.max_memory_allocated per step (the peak counter is reset at every step "
                             "boundary)")
        else:
            memory_source = ("the counted first step only: the most bytes of tensor storages live at once "
                             "(weights, gradients, optimizer state, the batch and what the step allocated), from "
                             "the memory tracker; allocator caching and the Python process are not included")
        return TrackReport(
            model=type(self.model).__name__, device=str(self.device), dtype=self.dtype, timer=self._clock.name,
            steps=len(done), counted_step=self._counted_step,
            counted_step_s=done[self._counted_step - 1].seconds if self._counted_step else None,
            flops_per_step=summary.flops_per_step, forward_flops=counted.get("forward"),
            backward_flops=counted.get("backward"), other_flops=counted.get("other"),
            samples_per_step=None if counted.get("unknown") else counted.get("samples") or None,
            samples_source=self._samples_source(),
            tokens_per_sample=tokens_per_sample, tokens_source=tokens_source, peak_flops=peak,
            peak_source=peak_source, peak_memory_source=memory_source, summary=summary,
            windows=tuple(self._windows), uncounted_ops=counted.get("uncounted", {}), notes=tuple(notes))


@contextmanager
def track(model: nn.Module, optimizer=None, tokens_per_sample: int | None = None, *,
          batch_size: int | None = None, dtype=None):
    """Track the training loop inside the block: yields a ``Tracker``; ``tracker.report()``
    gives the figures (during the loop: so far; after the block: final).

    Steps end at ``optimizer.step()`` when ``optimizer`` is given (a post-hook), else wherever the
    loop calls ``tracker.step()``. A step's samples are the batch (first dimension) of the
    model's forward calls in it, summed, or ``batch_size``; its tokens ``tokens_per_sample`` per
    sample, or inferred from the first 2-D int64 input (token ids). The first step is counted
    with the dispatch counter and left out of the time-based figures. ``dtype`` names the
    precision the MFU's peak is for (default: the model's; "bf16" for a loop under autocast).
    On exit, also when the loop raises, every hook is removed.
    """
    tracker = Tracker(model, optimizer, tokens_per_sample, batch_size=batch_size, dtype=dtype).open()
    tracker.begin_step()
    try:
        yield tracker
    except BaseException as exc:
        tracker.close(exc)
        raise
    tracker.close()
