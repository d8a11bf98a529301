"""Renderings of a ProfileReport: terminal table, Markdown, JSON, CSV. All read the same records."""

from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from .records import LayerRecord, ProfileReport
from .timing_records import BenchmarkReport

CONVENTION = "1 MAC = 2 FLOPs; FLOPs = 2 x MACs + all other floating-point ops"
CSV_FIELDS = ["name", "type", "depth", "params", "calls", "output_shape", "macs", "flops", "bytes",
              "intensity", "backward_macs", "backward_flops", "backward_bytes", "latency"]


def si(value: float, unit: str = "") -> str:
    """4089184256 -> '4.09 G' (decimal prefixes, three significant figures)."""
    for threshold, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip() if isinstance(value, float) else f"{value} {unit}".rstrip()


def _shape(shape) -> str:
    if shape is None:
        return "-"
    if isinstance(shape, tuple):
        return "x".join(str(d) for d in shape)
    return str(shape)


def _has_latency(report: ProfileReport) -> bool:
    return any(r.latency is not None for r in report.layers)


def _has_roofline(report: ProfileReport) -> bool:
    return any(r.bound is not None for r in report.layers)


def _rows(report: ProfileReport, depth: int | None):
    timed, roofline = _has_latency(report), _has_roofline(report)
    rows = []
    for r in report.layers:
        if depth is not None and r.depth > depth:
            continue
        rows.append(_row(r, "  " * (r.depth - 1) + r.name, report.backward, timed, roofline))
    rows.append(_row(report.model_record, "Total", report.backward, timed, roofline))
    return rows


def _row(r: LayerRecord, label: str, backward: bool, timed: bool, roofline: bool = False):
    shape = _shape(r.output_shape) if r.ran else "(not run)"
    row = [label, r.type, shape, si(r.params), si(r.macs), si(r.flops), si(r.bytes, "B"),
           f"{r.intensity:.1f}"]
    if backward:
        row += [si(r.backward_flops), si(r.total_flops)]
    if roofline:
        row += [r.bound or "-", f"{r.min_time * 1e3:.3f}" if r.min_time else "-"]
    if timed:
        row.append(f"{r.latency * 1e3:.3f}" if r.latency is not None else "-")
        if roofline:
            row.append(f"{r.time_over_bound:.1f}" if r.time_over_bound else "-")
    return row


def _headers(backward: bool, timed: bool = False, roofline: bool = False):
    headers = ["Layer", "Type", "Output", "Params", "MACs", "FLOPs", "Bytes", "FLOP/B"]
    if backward:
        headers += ["Bwd FLOPs", "Train FLOPs"]
    if roofline:
        headers += ["Bound", "Roofline ms"]
    if timed:
        headers.append("Latency ms")
        if roofline:
            headers.append("x roofline")
    return headers


def _summary(report: ProfileReport) -> list[str]:
    lines = [
        f"Params: {report.params:,} (trainable {report.trainable_params:,}, used in this pass "
        f"{report.params_used:,}); buffers {report.buffers:,}",
        f"Forward: {si(report.macs)}MACs, {si(report.flops)}FLOPs, {si(report.bytes, 'B')} moved, "
        f"{report.intensity:.1f} FLOP/B",
    ]
    if report.backward:
        lines.append(f"Backward: {si(report.backward_macs)}MACs, {si(report.backward_flops)}FLOPs; "
                     f"training step (fwd+bwd): {si(report.total_macs)}MACs, {si(report.total_flops)}FLOPs")
    storage = ", ".join(f"{k} {si(v, 'B')}" for k, v in report.storage_bytes.items())
    lines.append(f"Parameter storage: {storage}; state_dict as held ({report.param_dtype}) "
                 f"{si(report.state_dict_bytes, 'B')}")
    lines.append(f"Convention: {CONVENTION}")
    if report.uncounted_ops:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(report.uncounted_ops.items()))
        lines.append(f"Uncounted ops (no formula, not in the totals): {ops}")
    else:
        lines.append("Uncounted ops: none")
    return lines


def _title(report: ProfileReport) -> str:
    return (f"{report.model} | input {report.inputs} | batch {report.batch_size} | "
            f"device {report.device} | {report.mode} mode")


def to_table(report: ProfileReport, depth: int | None = None) -> str:
    headers = _headers(report.backward, _has_latency(report), _has_roofline(report))
    table = tabulate(_rows(report, depth), headers=headers, tablefmt="simple",
                     colalign=("left", "left", "left") + ("right",) * (len(headers) - 3))
    parts = [_title(report), table, *_summary(report)]
    if report.timing is not None:
        parts += ["", timing_table(report.timing)]
    return "\n".join(parts)


def to_markdown(report: ProfileReport, depth: int | None = None) -> str:
    table = tabulate(_rows(report, report.depth if depth is None else depth),
                     headers=_headers(report.backward, _has_latency(report), _has_roofline(report)),
                     tablefmt="github")
    summary = "\n".join(f"- {line}" for line in _summary(report))
    text = f"### {_title(report)}\n\n{table}\n\n{summary}\n"
    if report.timing is not None:
        text += "\n" + timing_table(report.timing, tablefmt="github") + "\n"
    return text


def _timing_headers(bench: BenchmarkReport) -> list[str]:
    headers = ["Batch", "Status", "p50 ms", "p90 ms", "p99 ms", "IQR %", "n", "Samples/s",
               "Back-to-back samples/s", "Achieved FLOP/s"]
    if bench.ceiling is not None:
        headers += ["MFU %" if bench.mode == "train" else "Util %", "Bandwidth %"]
    if any(r.power is not None for r in bench.rows):
        headers += ["Mean W", "J/sample", "Min SM MHz", "Max C"]
    return headers


def _pct(value) -> str:
    return f"{value * 100:.1f}" if value is not None else "-"


def timing_table(bench: BenchmarkReport, tablefmt: str = "simple") -> str:
    """One row per batch size, the run's conditions above it, warnings below."""
    headers = _timing_headers(bench)
    rows, notes = [], []
    for r in bench.rows:
        if not r.ok:
            rows.append([r.batch_size, r.status] + ["-"] * (len(headers) - 2))
            continue
        lat = r.latency
        row = [r.batch_size, "ok", f"{lat.p50 * 1e3:.3f}", f"{lat.p90 * 1e3:.3f}", f"{lat.p99 * 1e3:.3f}",
               f"{lat.relative_iqr * 100:.1f}", lat.n, f"{r.samples_per_s:.1f}",
               f"{r.throughput_samples_per_s:.1f}" if r.throughput_samples_per_s else "-",
               si(r.achieved_flops, "FLOP/s") if r.achieved_flops else "-"]
        if bench.ceiling is not None:
            row += [_pct(r.utilisation), _pct(r.bandwidth_utilisation)]
        if "Mean W" in headers:
            p = r.power
            row += [f"{p.mean_w:.0f}" if p and p.mean_w else "-",
                    f"{r.joules_per_sample:.4g}" if r.joules_per_sample else "-",
                    f"{p.min_sm_clock_mhz:.0f}" if p and p.min_sm_clock_mhz else "-",
                    f"{p.max_temperature_c:.0f}" if p and p.max_temperature_c else "-"]
            if p and p.throttled:
                notes.append(f"batch {r.batch_size}: clocks held down ({', '.join(p.throttled)})")
        rows.append(row)
        notes += [f"batch {r.batch_size}: {w}" for w in lat.warnings if not w.startswith("p99")]
        if lat.n < 100:
            notes.append(f"batch {r.batch_size}: p99 from only {lat.n} samples")
    env = bench.environment
    where = env.get("gpu") or f"{env.get('cpu')}, {env.get('intra_op_threads')} threads"
    title = (f"Timing ({bench.mode}, {bench.dtype}, {bench.device}: {where}; clock {bench.clock}; "
             f"latency = one synchronized batch, back-to-back = batches queued with one sync)")
    lines = [title, tabulate(rows, headers=headers, tablefmt=tablefmt)]
    if bench.ceiling is not None:
        c = bench.ceiling
        estimate = f"; estimate {si(c.estimate_flops, 'FLOP/s')}" if c.estimate_flops else ""
        lines.append(f"Ceiling: {si(c.peak_flops, 'FLOP/s')}, {si(c.peak_bandwidth, 'B/s')}, ridge "
                     f"{c.ridge_point:.1f} FLOP/B ({c.source}{estimate})")
    if bench.max_batch is not None:
        lines.append(f"Largest batch that fits: {bench.max_batch}")
    if bench.layer_latency and bench.layer_latency_total:
        top = sum(v for k, v in bench.layer_latency.items() if k and "." not in k)
        lines.append(f"Per-layer pass: top-level layers sum to {top * 1e3:.3f} ms of a "
                     f"{bench.layer_latency_total * 1e3:.3f} ms forward "
                     f"({(1 - top / bench.layer_latency_total) * 100:.1f}% outside them, hooks included)")
    lines += [f"Note: {n}" for n in notes]
    return "\n".join(lines)


def to_json(report: ProfileReport, indent: int | None = 2) -> str:
    return json.dumps(report.to_dict(), indent=indent, default=str)


def to_csv(report: ProfileReport) -> str:
    """One row per layer and a final row for the whole model, raw integers."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in [*report.layers, report.model_record]:
        row = {f: getattr(r, f) for f in CSV_FIELDS}
        row["output_shape"] = _shape(r.output_shape)
        if r is report.model_record:
            row["name"] = "(total)"
        writer.writerow(row)
    return buffer.getvalue()
