"""The roofline picture: the device's roof, each layer and the whole model as points."""

from __future__ import annotations

from ..errors import ProfilerError


def roofline_png(report, path: str, depth: int | None = None) -> str:
    """Write a log-log roofline (attainable FLOP/s against FLOPs per byte) to ``path``.

    Each layer with work sits at its arithmetic intensity; measured points (FLOPs / per-layer
    latency) where per-layer timing ran, else the bound it could reach. Needs matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ProfilerError("the roofline picture needs matplotlib: pip install 'torchprof_lab[plot]' "
                            "(or pip install matplotlib)") from exc
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
    ax.plot(xs, [min(ceiling.peak_flops, x * ceiling.peak_bandwidth) for x in xs], color="black", lw=2,
            label=f"roof: {ceiling.peak_flops / 1e9:.0f} GFLOP/s, {ceiling.peak_bandwidth / 1e9:.0f} GB/s")
    ax.axvline(ceiling.ridge_point, color="grey", ls=":", lw=1)
    measured = [r for r in layers if r.latency]
    if measured:
        ax.scatter([r.intensity for r in measured], [r.flops / r.latency for r in measured], s=18, alpha=0.7,
                   color="tab:blue", label="layers, measured (FLOPs / latency)")
    else:
        ax.scatter([r.intensity for r in layers], [r.flops / r.min_time for r in layers if r.min_time], s=18,
                   alpha=0.7, color="tab:blue", label="layers, at their roofline bound")
    if report.model_record.latency:
        achieved = report.flops / report.model_record.latency
    elif timing.rows and timing.rows[0].ok and timing.rows[0].achieved_flops:
        achieved = timing.rows[0].achieved_flops
    else:
        achieved = None
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
