"""The hardware comparison: a pure function of counts, timing rows and a ceiling.

Utilisation is achieved FLOP/s over the theoretical peak (MFU for a training step), so it
cannot pass 1.0 unless the peak is wrong; the roofline (bound, lower-bound time) uses the
attainable roofs, which on a CPU are measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ceiling import Ceiling


@dataclass(frozen=True)
class RowUse:
    """One timing row against the ceiling."""

    batch_size: int
    utilisation: float | None  # achieved FLOP/s / peak FLOP/s
    utilisation_at_observed_clock: float | None  # against the peak at the mean SM clock NVML saw
    bandwidth_utilisation: float | None  # achieved bytes/s / peak bandwidth


@dataclass(frozen=True)
class LayerBound:
    """One layer on the roofline."""

    bound: str  # "compute" or "memory"
    min_time: float  # seconds: max(FLOPs / roof, bytes / bandwidth)


@dataclass(frozen=True)
class HardwareComparison:
    ceiling: Ceiling
    rows: tuple[RowUse, ...]
    layers: dict[str, LayerBound]  # by layer name; "" is the whole model


def compare(layers, rows, ceiling: Ceiling) -> HardwareComparison:
    """``layers``: records with name, flops and bytes; ``rows``: timing rows with batch_size,
    achieved_flops, achieved_bandwidth and power. Reads them, changes nothing."""
    uses = []
    for row in rows:
        achieved, moved = row.achieved_flops, row.achieved_bandwidth
        clock = getattr(row.power, "mean_sm_clock_mhz", None)
        at_clock = ceiling.peak_at_clock(clock) if clock else None
        uses.append(RowUse(
            row.batch_size,
            achieved / ceiling.peak_flops if achieved is not None and ceiling.peak_flops else None,
            achieved / at_clock if achieved is not None and at_clock else None,
            moved / ceiling.peak_bandwidth if moved is not None else None,
        ))
    bounds = {r.name: LayerBound(ceiling.bound(r.flops, r.bytes), ceiling.min_time(r.flops, r.bytes))
              for r in layers if r.flops or r.bytes}
    return HardwareComparison(ceiling, tuple(uses), bounds)
