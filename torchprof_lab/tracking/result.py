"""The results of a tracked training loop: a window's figures and the run's report, values made once."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..report import render
from ..timing.stats import LatencyStats
from ..values import Value


@dataclass(frozen=True)
class TrackFigures:
    """The figures of a run of consecutive steps: a logging window, or the whole run.

    Time-based figures come from the window's timed steps (those after the counted step);
    None where nothing says them (no timed step, a batch that could not be told, no peak known).
    """

    first_step: int  # 1-based, inclusive
    last_step: int
    timed_steps: int
    latency: LatencyStats | None  # seconds per step, boundary to boundary
    samples_per_s: float | None
    tokens_per_s: float | None
    flops_per_step: int | None  # the model's forward + backward FLOPs of the counted first step
    flops_per_s: float | None  # achieved: each timed step's FLOPs over the steps' time
    mfu: float | None  # flops_per_s / the device's peak for the dtype
    peak_memory_bytes: int | None  # CUDA: the window's largest per-step peak; CPU: the counted step's
    joules_per_step: float | None  # GPU with NVML's energy counter
    mean_power_w: float | None

    @property
    def steps(self) -> int:
        return self.last_step - self.first_step + 1

    def metrics(self, prefix: str = "torchprof/") -> dict[str, float]:
        """The numbers a logger takes, under ``prefix``; figures that are None are left out."""
        step = self.latency
        values = {"samples_per_s": self.samples_per_s, "tokens_per_s": self.tokens_per_s,
                  "flops_per_step": self.flops_per_step, "flops_per_s": self.flops_per_s, "mfu": self.mfu,
                  "peak_memory_bytes": self.peak_memory_bytes,
                  "step_ms": step.mean * 1e3 if step is not None else None,
                  "step_ms_p50": step.p50 * 1e3 if step is not None else None,
                  "energy_j_per_step": self.joules_per_step, "power_w": self.mean_power_w}
        return {prefix + k: float(v) for k, v in values.items() if v is not None}

    def to_dict(self) -> dict:
        return {"first_step": self.first_step, "last_step": self.last_step, "timed_steps": self.timed_steps,
                "latency_s": self.latency.to_dict(with_samples=False) if self.latency is not None else None,
                "samples_per_s": self.samples_per_s, "tokens_per_s": self.tokens_per_s,
                "flops_per_step": self.flops_per_step, "flops_per_s": self.flops_per_s, "mfu": self.mfu,
                "peak_memory_bytes": self.peak_memory_bytes, "joules_per_step": self.joules_per_step,
                "mean_power_w": self.mean_power_w}


@dataclass(frozen=True)
class TrackReport(render.Rendered, Value):
    """A tracked training loop: the counted first step, the run's figures and its logging windows."""

    model: str
    device: str
    dtype: str  # the precision the peak is taken for
    timer: str  # the clock's name
    steps: int  # steps completed, the counted first one included
    counted_step: int  # the step whose FLOPs were counted: the first that ran the model (0: none did)
    counted_step_s: float | None  # its time, counting included: shown, never used in a figure
    flops_per_step: int | None  # the model's layers, forward + backward, in the counted first step
    forward_flops: int | None
    backward_flops: int | None
    other_flops: int | None  # ops of that step no layer of the model ran: the loss, the optimizer, clipping
    samples_per_step: int | None  # the counted step's
    samples_source: str
    tokens_per_sample: int | None  # the counted step's
    tokens_source: str | None
    peak_flops: float | None
    peak_source: str
    peak_memory_source: str
    summary: TrackFigures  # every step
    windows: tuple[TrackFigures, ...] = ()  # the logging windows, in order
    uncounted_ops: dict = field(default_factory=dict)  # ops of the counted step with no cost formula
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"model": self.model, "device": self.device, "dtype": self.dtype, "clock": self.timer,
                "steps": self.steps, "counted_step": self.counted_step,
                "counted_step_s": self.counted_step_s, "flops_per_step": self.flops_per_step,
                "forward_flops": self.forward_flops, "backward_flops": self.backward_flops,
                "other_flops": self.other_flops, "samples_per_step": self.samples_per_step,
                "samples_source": self.samples_source, "tokens_per_sample": self.tokens_per_sample,
                "tokens_source": self.tokens_source, "peak_flops": self.peak_flops, "peak_source": self.peak_source,
                "peak_memory_source": self.peak_memory_source, "summary": self.summary.to_dict(),
                "windows": [w.to_dict() for w in self.windows], "uncounted_ops": dict(self.uncounted_ops),
                "notes": list(self.notes)}


