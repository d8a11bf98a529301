"""Pictures: the roofline (the device's roof, each layer and the whole model as points) and
batch scaling (samples/s and latency against batch size)."""

from __future__ import annotations

from ..errors import ProfilerError


def _pyplot(what: str):
    """matplotlib.pyplot on the file-only Agg backend, or a clear error naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ProfilerError(f"{what} needs matplotlib: pip install 'torchprof_lab[plot]' "
                            "(or pip install matplotlib)") from exc
    return plt


def roofline_png(report, path: str, depth: int | None = None) -> str:
    """Write a log-log roofline (attainable FLOP/s against FLOPs per byte) to ``path``.

    Each layer with work sits at its arithmetic intensity; measured points (FLOPs / per-layer
    latency) where per-layer timing ran, else the bound it could reach. Needs matplotlib.
    """
    plt = _pyplot("the roofline picture")
    timing = report.timing
    ceiling = getattr(timing, "ceiling", None) if timing is not None else None
    if ceiling is None:
        raise ProfilerError("no hardware ceiling to draw: time the model on a CPU or a GPU in the spec table")
    layers = [r for r in report.layers if r.flops and r.bytes and (depth is None or r.depth <= depth)
              and not any(other.name.startswith(r.name + ".") for other in report.layers if other.flops)]
    intensities = [r.intensity for r in layers] + [report.intensity, ceiling.ridge_point]
    lo, hi = min(intensities) / 4, max(intensities) * 4
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    xs = [lo, ceiling.ridge_point, hi]
    ax.plot(xs, [min(ceiling.roof_flops, x * ceiling.roof_bandwidth) for x in xs], color="black", lw=2,
            label=f"roof: {ceiling.roof_flops / 1e9:.0f} GFLOP/s, {ceiling.roof_bandwidth / 1e9:.0f} GB/s")
    if ceiling.peak_flops and ceiling.roof_flops < ceiling.peak_flops:
        ax.axhline(ceiling.peak_flops, color="grey", ls="--", lw=1,
                   label=f"theoretical peak: {ceiling.peak_flops / 1e9:.0f} GFLOP/s")
    ax.axvline(ceiling.ridge_point, color="grey", ls=":", lw=1)
    measured = [r for r in layers if r.latency]
    if measured:
        ax.scatter([r.intensity for r in measured], [r.flops / r.latency for r in measured], s=18, alpha=0.7,
                   color="tab:blue", label="layers, measured (FLOPs / latency)")
    else:
        ax.scatter([r.intensity for r in layers], [r.flops / r.min_time for r in layers if r.min_time], s=18,
                   alpha=0.7, color="tab:blue", label="layers, at their roofline bound")
    achieved = report.achieved_flops
    if achieved:
        ax.scatter([report.intensity], [achieved], s=120, marker="*", color="tab:red",
                   label=f"whole model, {achieved / 1e9:.1f} GFLOP/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved, no fusion assumed)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(f"Roofline: {report.model}, batch {report.batch_size}, {report.device} ({ceiling.dtype})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def batch_scaling_png(timing, path: str) -> str:
    """Write the batch-scaling picture of ``timing`` (a BenchmarkReport) to ``path``. Needs matplotlib."""
    plt = _pyplot("the batch-scaling picture")
    fig = batch_scaling_figure(timing, plt)
    fig.savefig(path)
    plt.close(fig)
    return path


def batch_scaling_figure(timing, plt):
    """samples/s (one batch at a time, and back to back) and p50 latency with its p90 and p99
    against batch size; out-of-memory sizes and the largest batch that fits are marked."""
    ok = [r for r in timing.rows if r.ok]
    if not ok:
        raise ProfilerError("no batch size ran: nothing to draw")
    batches = [r.batch_size for r in ok]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    left.plot(batches, [r.samples_per_s for r in ok], marker="o", label="one batch at a time (batch / p50)")
    back_to_back = [(r.batch_size, r.throughput_samples_per_s) for r in ok if r.throughput_samples_per_s]
    if back_to_back:
        left.plot(*zip(*back_to_back), marker="s", ls="--", label="back to back")
    left.set_ylabel("samples/s")
    from matplotlib.ticker import EngFormatter  # matplotlib is loaded: plt came from _pyplot

    left.yaxis.set_major_formatter(EngFormatter(sep=" "))  # 140 M, not 1.4 with 1e8 above the axis
    right.plot(batches, [r.latency.p50 * 1e3 for r in ok], marker="o", color="tab:green", label="p50")
    right.fill_between(batches, [r.latency.p50 * 1e3 for r in ok], [r.latency.p99 * 1e3 for r in ok],
                       color="tab:green", alpha=0.15, label="p50 to p99")
    right.plot(batches, [r.latency.p90 * 1e3 for r in ok], color="tab:green", ls=":", label="p90")
    right.set_ylabel("latency per batch (ms)")
    for ax in (left, right):
        for row in timing.rows:
            if not row.ok:
                ax.axvline(row.batch_size, color="tab:red", ls="--", lw=1, label=f"{row.status} at {row.batch_size}")
        if timing.max_batch:
            ax.axvline(timing.max_batch, color="grey", ls=":", lw=1, label=f"largest that fits: {timing.max_batch_text}")
        ax.set_xscale("log", base=2)
        sizes = sorted({r.batch_size for r in timing.rows} | ({timing.max_batch} if timing.max_batch else set()))
        ax.set_xticks(sizes, [str(b) for b in sizes])
        if len(sizes) > 6:  # a sweep's 1 .. 4096 would run together ("102420484096")
            ax.tick_params(axis="x", labelrotation=60, labelsize="small")
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_xlabel("batch size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"Batch scaling: {timing.model}, {timing.mode}, {timing.dtype}, {timing.device}")
    fig.tight_layout()
    return fig
