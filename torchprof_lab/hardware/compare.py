"""The hardware comparison step: utilisation per timing row, roofline per layer."""

from __future__ import annotations

from .ceiling import Ceiling


def compare_with_hardware(report, ceiling: Ceiling) -> None:
    """Fill utilisation (MFU for training rows) and bandwidth use into each timing row, and each
    layer's roofline bound and lower-bound time, against ``ceiling``."""
    timing = report.timing
    timing.ceiling = ceiling
    for row in timing.rows:
        if row.achieved_flops is not None:
            row.utilisation = row.achieved_flops / ceiling.peak_flops
        clock = getattr(row.power, "mean_sm_clock_mhz", None)
        if row.achieved_flops is not None and clock and ceiling.peak_at_clock(clock):
            row.utilisation_at_observed_clock = row.achieved_flops / ceiling.peak_at_clock(clock)
        if row.achieved_bandwidth is not None:
            row.bandwidth_utilisation = row.achieved_bandwidth / ceiling.peak_bandwidth
    for record in (*report.layers, report.model_record):
        if record.flops or record.bytes:
            record.bound = ceiling.bound(record.flops, record.bytes)
            record.min_time = ceiling.min_time(record.flops, record.bytes)
