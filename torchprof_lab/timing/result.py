"""Result records of timing: one row per batch size, and the run's settings beside them.

Values, made once: the hardware comparison makes new rows (dataclasses.replace) with the
utilisation filled in rather than writing into these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..report import render
from .stats import LatencyStats
from ..values import Value


@dataclass(frozen=True)
class BenchmarkRow:
    """One batch size: latency statistics, back-to-back throughput and achieved FLOP/s."""

    batch_size: int
    status: str = "ok"  # "ok" or "OOM"
    latency: LatencyStats | None = None
    throughput_batch_s: float | None = None  # seconds per batch, back-to-back, one sync
    flops_per_batch: int | None = None  # forward FLOPs, or forward + backward when training
    bytes_per_batch: int | None = None  # counted bytes moved by the same work
    utilisation: float | None = None  # achieved FLOP/s / peak (MFU for a training step)
    utilisation_at_observed_clock: float | None = None  # against the peak at the mean SM clock NVML saw
    bandwidth_utilisation: float | None = None  # achieved bytes/s / peak bandwidth
    power: object = None  # PowerSummary over the timed window, where NVML could be read
    samples_processed: int | None = None  # samples run while power was sampled
    max_memory_allocated: int | None = None  # CUDA: torch.cuda.max_memory_allocated over the timed steps
    max_memory_reserved: int | None = None  # CUDA: the caching allocator's segments at their peak
    tokens_per_sample: int | None = None  # the sequence length of a token model's row (llm.py)
    model_flops_utilisation: float | None = None  # PaLM's model FLOPs x tokens/s / peak (llm.py)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def batches_per_s(self) -> float | None:
        return 1.0 / self.latency.p50 if self.ok else None

    @property
    def samples_per_s(self) -> float | None:
        """Samples per second at the median latency (one synchronized batch at a time)."""
        return self.batch_size / self.latency.p50 if self.ok else None

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens per second at the median latency: samples/s x tokens per sample."""
        per = self.samples_per_s
        return per * self.tokens_per_sample if per is not None and self.tokens_per_sample else None

    @property
    def throughput_samples_per_s(self) -> float | None:
        """Samples per second with batches back to back (what a pipeline sustains)."""
        return self.batch_size / self.throughput_batch_s if self.ok and self.throughput_batch_s else None

    @property
    def achieved_flops(self) -> float | None:
        """FLOP/s = FLOPs per batch / p50 latency."""
        if not self.ok or self.flops_per_batch is None:
            return None
        return self.flops_per_batch / self.latency.p50

    @property
    def achieved_bandwidth(self) -> float | None:
        """bytes/s = counted bytes per batch / p50 latency (no fusion assumed, so an upper estimate)."""
        if not self.ok or self.bytes_per_batch is None:
            return None
        return self.bytes_per_batch / self.latency.p50

    @property
    def joules_per_sample(self) -> float | None:
        joules = getattr(self.power, "joules", None)
        return joules / self.samples_processed if joules and self.samples_processed else None

    @property
    def samples_per_joule(self) -> float | None:
        per = self.joules_per_sample
        return 1 / per if per else None

    def to_dict(self) -> dict:
        data = {"batch_size": self.batch_size, "status": self.status,
                "latency_s": self.latency.to_dict() if self.latency else None,
                "throughput_batch_s": self.throughput_batch_s, "flops_per_batch": self.flops_per_batch,
                "bytes_per_batch": self.bytes_per_batch, "utilisation": self.utilisation,
                "utilisation_at_observed_clock": self.utilisation_at_observed_clock,
                "bandwidth_utilisation": self.bandwidth_utilisation,
                "power": self.power.to_dict() if self.power is not None else None,
                "tokens_per_sample": self.tokens_per_sample, "model_flops_utilisation": self.model_flops_utilisation,
                "max_memory_allocated": self.max_memory_allocated, "max_memory_reserved": self.max_memory_reserved}
        for key in ("batches_per_s", "samples_per_s", "tokens_per_s", "throughput_samples_per_s", "achieved_flops",
                    "achieved_bandwidth", "joules_per_sample", "samples_per_joule"):
            data[key] = getattr(self, key)
        return data


@dataclass(frozen=True)
class LayerSpan:
    """One module call in one timed run of the per-layer pass, on the run's clock."""

    name: str  # as in named_modules ("" is the model; a compiled model's prefix dropped)
    start: float  # seconds from the run's start
    seconds: float  # the call's duration (what the layer's median is made of)
    depth: int  # how many timed calls enclose it (0: the outermost)


@dataclass(frozen=True)
class ForwardSpans:
    """One timed run of the per-layer pass: its length and every module call in it, in start order."""

    batch_size: int
    seconds: float  # the whole timed run, as the loop measured it (hooks and, in training, backward included)
    started: float  # time.monotonic() at the run's start: places NVML samples beside the spans
    spans: tuple[LayerSpan, ...]


@dataclass(frozen=True)
class BenchmarkReport(render.Rendered, Value):
    """Timing of one model across batch sizes, with everything needed to reproduce it."""

    model: str
    input: str
    device: str
    dtype: str
    mode: str  # "inference" or "train"
    clock: str
    settings: dict
    environment: dict
    rows: tuple[BenchmarkRow, ...]
    max_batch: int | None = None
    # True when a larger batch ran out of memory, so max_batch is the largest that fits (0: none
    # does); False when nothing larger ran out: max_batch is then only the largest batch tried
    max_batch_bounded: bool = False
    layer_latency: dict[str, float] = field(default_factory=dict)  # median seconds per forward
    layer_latency_total: float | None = None  # whole-model median in that same per-layer pass
    layer_forwards: tuple[ForwardSpans, ...] = ()  # every timed run of the per-layer pass (the trace)
    layer_power: tuple = ()  # hardware.nvml.PowerSample readings during the per-layer pass (GPU, NVML)
    ceiling: object = None  # hardware.ceiling.Ceiling the rows were compared against
    autocast: bool = False  # a training step under autocast (fp32 master weights)

    @property
    def max_batch_text(self) -> str | None:
        """max_batch as every rendering writes it: '8'; '≥ 8' when nothing larger ran out of memory;
        'none' when not even batch 1 fits."""
        if self.max_batch is None:
            return None
        if self.max_batch == 0:
            return "none (batch 1 runs out of memory)"
        return str(self.max_batch) if self.max_batch_bounded else f"≥ {self.max_batch}"

    def row(self, batch_size: int) -> BenchmarkRow:
        for r in self.rows:
            if r.batch_size == batch_size:
                return r
        raise KeyError(f"no row for batch size {batch_size}")

    def to_dict(self) -> dict:
        return {"model": self.model, "input": self.input, "device": self.device, "dtype": self.dtype,
                "mode": self.mode, "autocast": self.autocast, "clock": self.clock, "settings": self.settings,
                "environment": self.environment, "max_batch": self.max_batch,
                "max_batch_bounded": self.max_batch_bounded if self.max_batch is not None else None,
                "rows": [r.to_dict() for r in self.rows], "layer_latency_s": self.layer_latency,
                "layer_latency_total_s": self.layer_latency_total,
                "ceiling": self.ceiling.to_dict() if self.ceiling is not None else None}
