"""Statistics of repeated timings: the distribution, not only a mean."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default, 'linear') of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


DRIFT_WARNING = 0.05  # half-to-half median change that gets a warning


@dataclass(frozen=True)
class LatencyStats:
    """Seconds per timed unit (one batch): n samples, their spread and percentiles."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p99: float
    iqr: float
    samples: tuple[float, ...] = field(repr=False, default=())

    @classmethod
    def of(cls, samples) -> "LatencyStats":
        values = sorted(float(s) for s in samples)
        if not values:
            raise ValueError("no timing samples")
        return cls(
            n=len(values), mean=statistics.fmean(values),
            std=statistics.stdev(values) if len(values) > 1 else 0.0,
            min=values[0], max=values[-1], p50=percentile(values, 50), p90=percentile(values, 90),
            p99=percentile(values, 99), iqr=percentile(values, 75) - percentile(values, 25),
            samples=tuple(float(s) for s in samples),
        )

    @property
    def relative_iqr(self) -> float:
        """IQR / median; above 0.10 the measurement is noisy (torch.utils.benchmark's threshold)."""
        return self.iqr / self.p50 if self.p50 else 0.0

    @property
    def drift(self) -> float | None:
        """Median of the run's second half over its first half, minus 1 (time order).

        A step between halves means the machine changed under the run (a CPU's boost
        ending, thermal throttling, other load): such a p50 is a mixture of two states.
        None with fewer than 10 samples.
        """
        if len(self.samples) < 10:
            return None
        half = len(self.samples) // 2
        first, second = statistics.median(self.samples[:half]), statistics.median(self.samples[half:])
        return second / first - 1.0 if first > 0 else None

    @property
    def warnings(self) -> list[str]:
        notes = []
        if self.relative_iqr > 0.10:
            notes.append(f"noisy: IQR is {self.relative_iqr:.0%} of the median")
        drift = self.drift
        if drift is not None and abs(drift) > DRIFT_WARNING:
            cause = ("a clock boost ending, throttling or other load starting?" if drift > 0
                     else "a warm-up too short, or other load ending?")
            notes.append(f"drifted: the second half of the run was {drift:+.0%} against the first "
                         f"({cause}); a longer --warmup-time may settle it")
        if self.n < 100:
            notes.append(f"p99 from only {self.n} samples")
        return notes

    def to_dict(self, with_samples: bool = True) -> dict:
        data = {k: getattr(self, k) for k in ("n", "mean", "std", "min", "max", "p50", "p90", "p99", "iqr",
                                              "drift", "warnings")}
        if with_samples:
            data["samples"] = list(self.samples)
        return data
