"""TimingOptions: how to time, one validated object for benchmark, profile, compare_precision,
DDP and the CLI, so a setting means the same thing wherever it is given."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from ..dtypes import TIMED, precision
from ..optimizers import check_optimizer


def _number(name: str, value, *, minimum: float, integer: bool = False, finite: bool = True):
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name} must be {kind} >= {minimum:g}, got {value!r}")
    if (finite and not math.isfinite(value)) or value != value or value < minimum:
        raise ValueError(f"{name} must be a finite {kind[2:] if integer else 'number'} >= {minimum:g}, got {value!r}")


@dataclass(frozen=True)
class TimingOptions:
    """Precision, mode, warm-up and stopping rules of a timing run.

    dtype None times the model in its own precision; 'fp16'/'bf16' time an inference copy
    cast to it, or a training step under autocast (fp32 master weights); 'tf32' turns on
    TF32 tensor-core math (CUDA only).
    """

    dtype: str | None = None
    train: bool = False
    warmup: int = 3
    warmup_time: float = 0.5
    min_time: float = 1.0
    min_runs: int = 10
    max_runs: int = 10_000
    max_time: float = 30.0
    sweep: bool = False
    sweep_budget: float = 120.0
    max_batch: bool = False
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None
    optimizer: object = None  # a name ('adamw'), a class or a factory of the params; SGD(lr=1e-3) if None
    per_layer: bool = False
    progress: bool | None = None  # a tqdm bar over batch sizes; None: only on a terminal

    def __post_init__(self):
        if self.dtype is not None:
            object.__setattr__(self, "dtype", precision(self.dtype, allowed=TIMED).name)
        for name in ("train", "sweep", "max_batch", "channels_last", "compile", "per_layer"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _number("warmup", self.warmup, minimum=0, integer=True)
        _number("min_runs", self.min_runs, minimum=1, integer=True)
        _number("max_runs", self.max_runs, minimum=self.min_runs, integer=True)
        _number("warmup_time", self.warmup_time, minimum=0)
        _number("min_time", self.min_time, minimum=0)
        _number("max_time", self.max_time, minimum=0)
        _number("sweep_budget", self.sweep_budget, minimum=0)
        if self.threads is not None:
            _number("threads", self.threads, minimum=1, integer=True)
        check_optimizer(self.optimizer)
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True, False or None, got {self.progress!r}")

    @classmethod
    def of(cls, options: "TimingOptions | None" = None, **settings) -> "TimingOptions":
        """``options`` (or the defaults) with ``settings`` replaced; unknown names are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown timing option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        base = options if options is not None else cls()
        if not isinstance(base, cls):
            raise TypeError(f"options must be a TimingOptions, got {type(base).__name__}")
        return replace(base, **settings) if settings else base

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["optimizer"] = None if self.optimizer is None else getattr(self.optimizer, "__name__", "given")
        return data
