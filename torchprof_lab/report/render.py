"""Renderings of a profile: terminal table, Markdown, CSV and strict JSON values.

This module knows no result class: it reads the fields of the values it is given (a
ProfileReport, its LayerRecords, a BenchmarkReport), so results may use it to print
themselves without an import cycle.
"""

from __future__ import annotations

import csv
import io
import json
import math

from tabulate import tabulate

from . import html
from .units import binary, output_text, shape_text, si  # noqa: F401 - render.si and render.binary, as before

CONVENTION = "1 MAC = 2 FLOPs; FLOPs = 2 x MACs + all other floating-point ops"
CSV_FIELDS = ["name", "type", "depth", "params", "calls", "output_shape", "macs", "flops", "bytes",
              "intensity", "backward_macs", "backward_flops", "backward_bytes", "latency", "bound", "min_time",
              "time_over_bound"]  # the last three: the roofline's, empty without a hardware comparison


def _has_latency(report) -> bool:
    return any(r.latency is not None for r in report.layers)


def _has_roofline(report) -> bool:
    return any(r.bound is not None for r in report.layers)


def _rows(report, depth: int | None):
    timed, roofline = _has_latency(report), _has_roofline(report)
    rows = []
    for r in report.layers:
        if depth is not None and r.depth > depth:
            continue
        rows.append(_row(r, "  " * (r.depth - 1) + r.name, report.backward, timed, roofline))
    rows.append(_row(report.model_record, "Total", report.backward, timed, roofline))
    return rows


def _row(r, label: str, backward: bool, timed: bool, roofline: bool = False):
    row = [label, r.type, output_text(r), si(r.params), si(r.macs), si(r.flops), si(r.bytes, "B"),
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


def _summary(report) -> list[str]:
    lines = [
        f"Params: {report.params:,} (trainable {report.trainable_params:,}, used in this pass "
        f"{report.params_used:,}); buffers {report.buffers:,}",
        f"Forward: {si(report.macs)}MACs, {si(report.flops)}FLOPs, {si(report.bytes, 'B')} moved, "
        f"{report.intensity:.1f} FLOP/B",
    ]
    if report.backward:
        lines.append(f"Backward: {si(report.backward_macs)}MACs, {si(report.backward_flops)}FLOPs; "
                     f"training step (fwd+bwd): {si(report.total_macs)}MACs, {si(report.total_flops)}FLOPs")
    lines += _per_token(report)
    storage = ", ".join(f"{k} {si(v, 'B')}" for k, v in report.storage_bytes.items())
    lines.append(f"Parameter storage: {storage}; state_dict as held ({report.param_dtype}) "
                 f"{si(report.state_dict_bytes, 'B')}")
    lines.append(f"Convention: {CONVENTION}")
    if report.uncounted_ops:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(report.uncounted_ops.items()))
        lines.append(f"Uncounted ops (no formula, not in the totals): {ops}")
    else:
        lines.append("Uncounted ops: none")
    lines += [f"Note: {note}" for note in report.notes]
    return lines


def _per_token(report) -> list[str]:
    """Parameters without embeddings and FLOPs per token, for a model with embeddings or tokens."""
    lines = []
    if getattr(report, "embedding_params", 0):
        lines.append(f"Params without embeddings: {report.params_without_embeddings:,} "
                     f"(embeddings {report.embedding_params:,})")
    if getattr(report, "tokens_per_sample", None):
        line = f"Per token ({report.tokens_per_sample} tokens per sample): forward {si(report.flops_per_token)}FLOPs"
        if report.train_flops_per_token is not None:
            line += f", training step {si(report.train_flops_per_token)}FLOPs"
        if report.model_flops_per_token is not None:
            train = report.timing.mode == "train" if report.timing is not None else report.backward
            line += (f"; PaLM model FLOPs {si(report.model_flops_per_token)}FLOPs "
                     f"({'6N + 12LHQT' if train else '2N + 4LHQT'}, N without embeddings)")
        lines.append(line)
    return lines


def _title(report) -> str:
    return (f"{report.model} | input {report.inputs} | batch {report.batch_size} | "
            f"device {report.device} | {report.dtype} | {report.mode} mode")


def to_table(report, depth: int | None = None) -> str:
    headers = _headers(report.backward, _has_latency(report), _has_roofline(report))
    table = tabulate(_rows(report, depth), headers=headers, tablefmt="simple",
                     colalign=("left", "left", "left") + ("right",) * (len(headers) - 3))
    parts = [_title(report), table, *_summary(report)]
    if report.timing is not None:
        parts += ["", timing_table(report.timing)]
    if getattr(report, "memory", None) is not None:
        parts += ["", memory_table(report.memory, depth)]
    return "\n".join(parts)


def to_markdown(report, depth: int | None = None) -> str:
    table = tabulate(_rows(report, report.depth if depth is None else depth),
                     headers=_headers(report.backward, _has_latency(report), _has_roofline(report)),
                     tablefmt="github")
    summary = "\n".join(f"- {line}" for line in _summary(report))
    text = f"### {_title(report)}\n\n{table}\n\n{summary}\n"
    if report.timing is not None:
        text += "\n" + timing_table(report.timing, tablefmt="github") + "\n"
    if getattr(report, "memory", None) is not None:
        text += "\n" + memory_table(report.memory, depth, "github")
    return text


def _timing_headers(bench) -> list[str]:
    headers = ["Batch", "Status", "p50 ms", "p90 ms", "p99 ms", "IQR %", "n", "Samples/s",
               "Back-to-back samples/s", "Achieved FLOP/s"]
    tokens = any(getattr(r, "tokens_per_sample", None) for r in bench.rows)
    if tokens:
        headers[1:1] = ["Seq"]
        headers.insert(headers.index("Samples/s") + 1, "Tokens/s")
    if bench.ceiling is not None:
        # on a CPU the bandwidth is the measured copy's, which cache-resident work can pass
        headers += ["MFU %" if bench.mode == "train" else "Util %",
                    "BW % of copy" if bench.ceiling.attainable_bandwidth else "Bandwidth %"]
        if any(getattr(r, "model_flops_utilisation", None) is not None for r in bench.rows):
            headers.append("PaLM MFU %" if bench.mode == "train" else "PaLM util %")
    if any(r.power is not None for r in bench.rows):
        headers += ["Mean W", "J/sample", "Min SM MHz", "Max C"]
    if any(getattr(r, "max_memory_allocated", None) is not None for r in bench.rows):
        headers += ["Max allocated", "Max reserved"]
    return headers


def _which(row) -> str:
    """'batch 8', or 'batch 8, seq 128' for a token model's row."""
    seq = getattr(row, "tokens_per_sample", None)
    return f"batch {row.batch_size}, seq {seq}" if seq else f"batch {row.batch_size}"


def _pct(value) -> str:
    return f"{value * 100:.1f}" if value is not None else "-"


def _timing_parts(bench):
    """(title, headers, rows, lines below the table) of a benchmark."""
    headers = _timing_headers(bench)
    rows, notes = [], []
    for r in bench.rows:
        if not r.ok:
            rows.append([r.batch_size, r.status] + ["-"] * (len(headers) - 2))
            if "Seq" in headers:
                rows[-1][1:1] = [r.tokens_per_sample or "-"]
                del rows[-1][-1]
            continue
        lat = r.latency
        row = [r.batch_size, "ok", f"{lat.p50 * 1e3:.3f}", f"{lat.p90 * 1e3:.3f}", f"{lat.p99 * 1e3:.3f}",
               f"{lat.relative_iqr * 100:.1f}", lat.n, f"{r.samples_per_s:.1f}",
               f"{r.throughput_samples_per_s:.1f}" if r.throughput_samples_per_s else "-",
               si(r.achieved_flops, "FLOP/s") if r.achieved_flops else "-"]
        if "Seq" in headers:
            row[1:1] = [r.tokens_per_sample or "-"]
            row.insert(headers.index("Tokens/s"), f"{r.tokens_per_s:.1f}" if r.tokens_per_s else "-")
        if bench.ceiling is not None:
            row += [_pct(r.utilisation), _pct(r.bandwidth_utilisation)]
            if "PaLM MFU %" in headers or "PaLM util %" in headers:
                row.append(_pct(r.model_flops_utilisation))
        if "Mean W" in headers:
            p = r.power
            row += [f"{p.mean_w:.0f}" if p and p.mean_w else "-",
                    f"{r.joules_per_sample:.4g}" if r.joules_per_sample else "-",
                    f"{p.min_sm_clock_mhz:.0f}" if p and p.min_sm_clock_mhz else "-",
                    f"{p.max_temperature_c:.0f}" if p and p.max_temperature_c else "-"]
            if p and p.throttled:
                notes.append(f"{_which(r)}: clocks held down ({', '.join(p.throttled)})")
        if "Max allocated" in headers:
            row += [binary(r.max_memory_allocated) if r.max_memory_allocated is not None else "-",
                    binary(r.max_memory_reserved) if r.max_memory_reserved is not None else "-"]
        rows.append(row)
        notes += [f"{_which(r)}: {w}" for w in lat.warnings if not w.startswith("p99")]
        if lat.n < 100:
            notes.append(f"{_which(r)}: p99 from only {lat.n} samples")
    env = bench.environment
    threads, cpus = env.get("intra_op_threads"), env.get("logical_cpus")
    if threads and cpus and threads > cpus and not env.get("gpu"):
        notes.append(f"{threads} threads on {cpus} logical CPUs: the threads take turns, so every figure is "
                     f"slower than this machine runs the model (use {cpus} or fewer)")
    where = env.get("gpu") or f"{env.get('cpu')}, {_threads(threads)}"
    precision = f"{bench.dtype} autocast" if bench.autocast else bench.dtype
    title = (f"Timing ({bench.mode}, {precision}, {bench.device}: {where}; clock {bench.clock}; "
             f"latency = one synchronized batch, back-to-back = batches queued with one sync)")
    lines = []
    if bench.ceiling is not None:
        c = bench.ceiling
        peak = si(c.peak_flops, 'FLOP/s') if c.peak_flops else "unknown"
        lines.append(f"Peak: {peak} {c.dtype} ({c.source})")
        if c.boost_flops:
            lines.append(f"At the boost clock: {c.boost_formula}")
        if c.attainable_flops:
            lines.append(f"Roofline roofs (measured): {si(c.roof_flops, 'FLOP/s')}, {si(c.roof_bandwidth, 'B/s')}, "
                         f"ridge {c.ridge_point:.1f} FLOP/B; Bandwidth % is against the measured copy")
        else:
            lines.append(f"Bandwidth: {si(c.peak_bandwidth, 'B/s')}, ridge {c.ridge_point:.1f} FLOP/B")
        lines += [f"Note: {n}" for n in c.notes]
    if bench.max_batch is not None:
        lines.append(f"Largest batch that fits: {bench.max_batch_text}" if bench.max_batch_bounded else
                     f"Largest batch that fits: {bench.max_batch_text} (the largest tried; none larger ran out of "
                     f"memory)")
    if bench.layer_latency and bench.layer_latency_total:
        lines.append(_layer_pass_line(bench))
    lines += [f"Note: {n}" for n in notes]
    return title, headers, rows, lines


def _threads(count) -> str:
    return f"{count} thread" if count == 1 else f"{count} threads"


def _layer_pass_line(bench) -> str:
    """The top-level layers' medians against the whole run's, in the per-layer pass. In training
    the whole is the step (the layers' hooks time their forward only); each figure is the median
    of its own samples, so the layers' sum can pass the whole: said so, not as a negative share."""
    top = sum(v for k, v in bench.layer_latency.items() if k and "." not in k)
    whole = bench.layer_latency_total
    train = bench.mode == "train"
    what = "training step" if train else "forward"
    line = (f"Per-layer pass: top-level layers sum to {top * 1e3:.3f} ms of a {whole * 1e3:.3f} ms {what}"
            + (" (forward, backward and optimizer step; layers time their forward only)" if train else ""))
    if top > whole:
        return line + (f"; the layers' medians sum to more than the {what}'s median: each is the median of its "
                       "own samples (timing noise, hooks included)")
    return line + f"; {(1 - top / whole) * 100:.1f}% of it outside them, hooks included"


def timing_table(bench, tablefmt: str = "simple") -> str:
    """One row per batch size, the run's conditions above it, ceilings and warnings below."""
    title, headers, rows, lines = _timing_parts(bench)
    return "\n".join([title, _table(rows, headers, tablefmt, formatted=True), *lines])


def _table(rows, headers, tablefmt: str, formatted: bool = False) -> str:
    """tabulate's table; ``formatted``: the cells are formatted already (timings), printed as they
    are, right-aligned (tabulate's own number parsing would print 1392880.0 as 1.39288e+06)."""
    if not formatted:
        return tabulate(rows, headers=headers, tablefmt=tablefmt)
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("right",) * len(headers))


def jsonable(value):
    """``value`` made strict-JSON safe: NaN and infinities become None (JSON has no NaN),
    tuples lists, dict keys strings, and anything else unknown its str()."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)


def to_csv(report, depth: int | None = None) -> str:
    """One row per layer (down to ``depth``) and a final row for the whole model, raw numbers;
    when the profile was timed, a blank line and then the timing rows, one per batch size (``timing_csv``);
    with memory, its two blocks (``memory_csv``), each after a blank line."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in [*_within(report.layers, depth), report.model_record]:
        row = {f: getattr(r, f) for f in CSV_FIELDS}
        row["output_shape"] = shape_text(r.output_shape)
        if r is report.model_record:
            row["name"] = "(total)"
        writer.writerow(row)
    if report.timing is not None:
        buffer.write("\n" + timing_csv(report.timing))
    memory = getattr(report, "memory", None)
    if memory is not None:
        buffer.write("\n" + memory_csv(memory, depth))
    return buffer.getvalue()


def timing_csv(bench) -> str:
    """One row per batch size, raw numbers: the same block alone or inside a profile's CSV."""
    def power(r, name):
        return getattr(r.power, name, None) if getattr(r, "power", None) is not None else None

    return _csv(TIMING_CSV_FIELDS, [[r.batch_size, r.status] + [_raw(v) for v in (
        *((r.latency.p50, r.latency.p90, r.latency.p99, r.latency.n, r.latency.relative_iqr) if r.ok
          else (None,) * 5),
        r.samples_per_s, r.throughput_samples_per_s, r.flops_per_batch, r.bytes_per_batch,
        r.achieved_flops, r.utilisation, r.bandwidth_utilisation, getattr(r, "tokens_per_sample", None),
        getattr(r, "tokens_per_s", None), getattr(r, "model_flops_utilisation", None),
        power(r, "mean_w"), getattr(r, "joules_per_sample", None), power(r, "min_sm_clock_mhz"),
        power(r, "max_temperature_c"), getattr(r, "max_memory_allocated", None),
        getattr(r, "max_memory_reserved", None))] for r in bench.rows])


MEMORY_LAYER_CSV_FIELDS = ["name", "type", "depth", "saved_for_backward_bytes", "forward_peak_bytes",
                           "backward_peak_bytes"]


def memory_csv(memory, depth: int | None = None) -> str:
    """The step's bytes by category at the peak and the peak itself, then a blank line and one row
    per layer (down to ``depth``): the same blocks alone or inside a profile's CSV."""
    categories = _csv(["memory_category", "bytes_at_peak"],
                      [*([k, v] for k, v in memory.by_category.items()), ["peak", memory.peak_bytes]])
    layers = _csv(MEMORY_LAYER_CSV_FIELDS, [
        [r.name, r.type, r.depth, r.saved_bytes, r.forward_peak, r.backward_peak if memory.mode == "train" else None]
        for r in memory.layers if depth is None or r.depth <= depth])
    return categories + "\n" + layers


GENERATION_CSV_FIELDS = ["batch_size", "prefill_p50_s", "decode_p50_s", "tokens_per_s", "kv_cache_bytes",
                         "flops_per_token", "mfu_prefill", "mbu_decode", "generations", "decode_steps"]


def _csv(headers, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


TIMING_CSV_FIELDS = ["batch_size", "status", "p50_s", "p90_s", "p99_s", "n", "relative_iqr", "samples_per_s",
                     "throughput_samples_per_s", "flops_per_batch", "bytes_per_batch", "achieved_flops",
                     "utilisation", "bandwidth_utilisation", "tokens_per_sample", "tokens_per_s",
                     "model_flops_utilisation", "mean_w", "joules_per_sample", "min_sm_clock_mhz",
                     "max_temperature_c", "max_memory_allocated", "max_memory_reserved"]  # the last six: GPU runs


def _raw(value) -> str:
    return "" if value is None else str(value)


def _within(layers, depth: int | None):
    return [r for r in layers if depth is None or r.depth <= depth]


class Rendered:
    """The renderings of a result value with ``to_dict()``: JSON, the table (also its ``str()``),
    Markdown and HTML, all through ``render`` (a mixin of the result classes; it holds no data)."""

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(jsonable(self.to_dict()), indent=indent, allow_nan=False)

    def to_table(self) -> str:
        return render(self, "table")

    def to_markdown(self) -> str:
        return render(self, "markdown")

    def to_html(self) -> str:
        return render(self, "html")

    def __str__(self) -> str:
        return self.to_table()


# ---------------------------------------------------------------------- every result, every format
FORMATS = ("table", "json", "csv", "markdown", "html")


def render(result, fmt: str = "table", depth: int | None = None) -> str:
    """``result`` (a profile, a benchmark, a precision comparison, a DDP report or device
    facts) in ``fmt``: table, json, csv, markdown or html (one self-contained page)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "html":  # report/html.py lays the page out around the text of these same tables
        html.check_depth(depth)  # before the text, which reads it too
        return html.page(result, _page_text(result, depth), depth)
    if fmt == "json":
        data = result.to_dict()
        if depth is not None and "layers" in data and hasattr(result, "model_record"):
            data["layers"] = [layer for layer in data["layers"] if layer["depth"] <= depth]
        return json.dumps(jsonable(data), indent=2, allow_nan=False)
    if hasattr(result, "model_record"):  # a profile
        if fmt == "csv":
            return to_csv(result, depth)
        return to_markdown(result, depth) if fmt == "markdown" else to_table(result, depth)
    if fmt == "table" and hasattr(result, "clock"):  # a benchmark: its own layout
        return timing_table(result)
    if fmt in ("table", "markdown") and _is_memory(result):  # a memory report: two tables
        return memory_table(result, depth, "github" if fmt == "markdown" else "simple")
    if fmt == "csv" and hasattr(result, "new_tokens"):  # a generation benchmark: raw numbers
        return _csv(GENERATION_CSV_FIELDS, [[_raw(v) for v in (
            r.batch_size, r.prefill.p50, r.decode.p50, r.tokens_per_s, r.kv_cache_bytes, r.flops_per_token,
            r.mfu_prefill, r.mbu_decode, r.generations, r.decode_steps)] for r in result.rows])
    if fmt == "csv" and hasattr(result, "max_batch_bounded"):  # a benchmark: as in a profile's CSV
        return timing_csv(result)
    if fmt == "csv" and _is_memory(result):
        return memory_csv(result, depth)
    title, headers, rows, notes = tabular(result)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buffer.getvalue()
    timed = hasattr(result, "clock")
    if fmt == "markdown":
        text = f"### {title}\n\n{_table(rows, headers, 'github', timed)}\n"
        return text + "".join(f"\n- {n}" for n in notes) + ("\n" if notes else "")
    return "\n".join([title, _table(rows, headers, "simple", timed), *notes])


def _page_text(result, depth: int | None):
    """The text of the HTML page, as the other formats write it: (title, the lines under it, named
    tables (title, headers, rows, notes): timing, memory, memory_layers, or table for the rest)."""
    if hasattr(result, "model_record"):  # a profile: its layers are drawn from their fields
        tables = {}
        if result.timing is not None:
            tables["timing"] = _timing_parts(result.timing)
        if getattr(result, "memory", None) is not None:
            tables["memory"] = _memory_parts(result.memory)
        return _title(result), _summary(result), tables
    if hasattr(result, "clock"):  # a benchmark
        parts = _timing_parts(result)
        return parts[0], [], {"timing": parts}
    if _is_memory(result):
        parts = _memory_parts(result)
        return parts[0], [], {"memory": parts, "memory_layers": ("Layers", *_memory_layer_rows(result, depth), [])}
    parts = tabular(result)
    return parts[0], [], {"table": parts}


def tabular(result) -> tuple[str, list[str], list[list], list[str]]:
    """(title, headers, rows, notes) of a result that is one table."""
    if hasattr(result, "fields") and hasattr(result, "kind"):  # device facts
        rows = [[k, ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v] for k, v in result.fields.items()]
        return f"{result.kind.upper()} facts", ["field", "value"], rows, []
    if hasattr(result, "world_size"):  # a DDP report
        return _distributed(result)
    if hasattr(result, "rows") and result.rows and hasattr(result.rows[0], "speedup"):
        return _precision(result)
    if hasattr(result, "clock"):  # a benchmark
        return _timing_parts(result)
    if hasattr(result, "new_tokens"):  # a generation benchmark
        return _generation(result)
    if hasattr(result, "windows") and hasattr(result, "summary"):  # a tracked training loop
        return _track(result)
    raise TypeError(f"no rendering for {type(result).__name__}")


def _g(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"


def _precision(report):
    rows = [[r.dtype, f"{r.p50_s * 1e3:.3f}", f"{r.speedup:.2f}x", _g(r.max_abs_error),
             _g(r.mean_abs_error), _g(r.max_rel_error), _g(r.mean_rel_error),
             "-" if r.top1_agreement is None else f"{r.top1_agreement * 100:.1f}%",
             f"{r.model_bytes / 1e6:.2f}"] for r in report.rows]
    headers = ["Precision", "p50 ms", "Speed-up", "Max abs err", "Mean abs err", "Max rel err", "Mean rel err",
               "Top-1 agree", "Model MB"]
    title = (f"Precision against fp32: {report.model} on {report.device}, {report.samples} samples, inputs: "
             f"{report.inputs}")
    notes = ["Errors are against the fp32 outputs on the same inputs; relative errors divide by the fp32 "
             "outputs' max (max) or L1 norm (mean)."] + [f"Note: {n}" for n in report.notes]
    return title, headers, rows, notes


def _distributed(report):
    sharded = report.strategy == "fsdp2"
    rows = [[r.rank, r.host, r.device, r.threads, f"{r.latency.p50 * 1e3:.2f}", f"{r.latency.p90 * 1e3:.2f}",
             f"{r.samples_per_s:.1f}"] + ([] if sharded else [f"{r.comm_s_per_step * 1e3:.2f}"]) for r in report.rows]
    headers = ["Rank", "Host", "Device", "Threads", "Step p50 ms", "Step p90 ms", "Samples/s"] + (
        [] if sharded else ["All-reduce ms/step"])
    precision = f"{report.dtype} autocast" if report.autocast else report.dtype
    step = "FSDP2 (fully_shard)" if sharded else "DDP"
    title = (f"{step} training step: {report.model}, {report.world_size} ranks ({report.backend}), {precision}, "
             f"batch {report.batch_size_per_rank} per rank")
    notes = [
        f"Total {report.total_samples_per_s:.1f} samples/s; slowest rank {report.slowest_rank}; single process "
        f"{report.single_samples_per_s:.1f} samples/s ({report.single_source}); scaling efficiency "
        f"{report.efficiency * 100:.1f}% = total / ({report.world_size} x single)",
        f"All-gathers (forward, backward) and reduce-scatter per step: {binary(round(report.comm_bytes_per_step))} "
        f"sent per rank (parameters {binary(report.param_bytes)} x 3(N-1)/N)" if sharded else
        f"Gradient all-reduce per step: {binary(round(report.allreduce_bytes_per_step))} sent per rank "
        f"(parameters {binary(report.param_bytes)} x 2(N-1)/N); all-reduce time is launch to completion "
        f"per bucket, overlapping the backward pass",
    ]
    over = [r.rank for r in report.rows if r.comm_s_per_step is not None and r.comm_s_per_step > r.latency.p50]
    if over:
        notes.append(f"All-reduce ms/step is above the step's p50 on rank{'s' if len(over) > 1 else ''} "
                     f"{', '.join(map(str, over))}: it is not a share of the step but the sum, over the step's "
                     "buckets, of the time from a bucket's gradients being ready (the comm hook's launch) to its "
                     "all-reduce future completing; those waits overlap the backward pass and each other")
    measured = [r.memory for r in report.rows if r.memory is not None]
    if measured:  # each rank's step measured by memory's tracker: the peak and its categories
        shown = [c for c in measured[0].by_category if any(m.by_category.get(c, 0) for m in measured)]
        headers += ["Peak memory", "Peak at"] + shown
        for row, r in zip(rows, report.rows):
            m = r.memory
            row += ["-"] * (2 + len(shown)) if m is None else \
                [binary(m.peak_bytes), m.peak_at] + [binary(m.by_category.get(c, 0)) for c in shown]
        first = measured[0]
        notes.append(f"Memory: each rank's {first.optimizer} training step measured on {first.device} by the "
                     "tracker of memory(); the categories are those at the rank's peak")
        if first.largest_by_category:
            most = ", ".join(f"{c} {binary(v)}" for c, v in first.largest_by_category.items() if v)
            notes.append(f"Most held at once in the step, by category (rank {report.rows[0].rank}): {most}")
        notes += [f"Note: {n}" for n in first.notes]
    return title, headers, rows, notes


def _generation(report):
    def pct(value):
        return "-" if value is None else f"{value * 100:.1f}%"

    rows = [[r.batch_size, f"{r.prefill.p50 * 1e3:.3f}", f"{r.decode.p50 * 1e3:.3f}", f"{r.tokens_per_s:.1f}",
             si(r.kv_cache_bytes, "B"), "-" if r.flops_per_token is None else si(r.flops_per_token),
             pct(r.mfu_prefill), pct(r.mbu_decode), f"{r.generations} x {r.decode_steps}"] for r in report.rows]
    headers = ["Batch", "Prefill p50 ms", "Decode p50 ms/step", "Tokens/s", "KV cache", "FLOPs/token",
               "MFU prefill", "MBU decode", "Runs x steps"]
    title = (f"Generation: {report.model} on {report.device}, {report.dtype}, prompt {report.prompt_len} + "
             f"{report.new_tokens} new tokens, greedy, {report.cache} cache"
             f"{', compiled' if report.compiled else ''} | clock: {report.timer}")
    notes = [f"Note: {n}" for n in report.notes]
    for r in report.rows:
        notes += [f"Warning (batch {r.batch_size}, {what}): {w}" for what, stats in
                  (("prefill", r.prefill), ("decode", r.decode)) for w in stats.warnings if "p99" not in w]
    if report.ceiling is not None:
        notes.append(f"Ceiling: {report.ceiling.source}")
    return title, headers, rows, notes


def _track(report):
    """A tracked training loop: a row per logging window, then the whole run; columns no row
    has a figure for (tokens, energy on a CPU) are left out."""
    def cell(value, text):
        return "-" if value is None else text(value)

    def ms(value):
        return f"{value * 1e3:.3f}"

    def row(label, f):
        lat = f.latency
        return [label, f.timed_steps, cell(lat and lat.p50, ms), cell(lat and lat.mean, ms),
                cell(f.samples_per_s, lambda v: f"{v:.1f}"), cell(f.tokens_per_s, lambda v: f"{v:.1f}"),
                cell(f.flops_per_s, lambda v: si(v, "FLOP/s")), cell(f.mfu, lambda v: f"{v * 100:.3g}%"),
                cell(f.peak_memory_bytes, binary), cell(f.joules_per_step, lambda v: f"{v:.3g}"),
                cell(f.mean_power_w, lambda v: f"{v:.0f}")]

    headers = ["Steps", "Timed", "Step p50 ms", "Step mean ms", "Samples/s", "Tokens/s", "Achieved", "MFU",
               "Peak memory", "J/step", "Power W"]
    rows = [row(f"{w.first_step}-{w.last_step}", w) for w in report.windows]
    run = report.summary
    rows.append(row("no steps" if run.last_step < run.first_step else f"all ({run.first_step}-{run.last_step})",
                    run))
    keep = [i for i, h in enumerate(headers) if h not in ("Tokens/s", "J/step", "Power W")
            or any(r[i] != "-" for r in rows)]
    headers, rows = [headers[i] for i in keep], [[r[i] for i in keep] for r in rows]
    title = (f"Training loop: {report.model} on {report.device}, {report.dtype}, {report.steps} steps | clock: "
             f"{report.timer}")
    notes = []
    if report.flops_per_step is not None:
        notes.append(f"FLOPs per step (counted in step {report.counted_step}): {si(report.flops_per_step)} = forward "
                     f"{si(report.forward_flops)} + backward {si(report.backward_flops)}; outside the model "
                     f"(loss, optimizer): {si(report.other_flops)}")
    notes.append(f"Samples: {report.samples_source}")
    if report.tokens_source is not None:
        notes.append(f"Tokens: {report.tokens_per_sample} per sample, {report.tokens_source}")
    if report.peak_flops is not None or report.summary.flops_per_s is not None:
        notes.append(f"Peak: {report.peak_source}")
    notes.append(f"Peak memory: {report.peak_memory_source}")
    if report.uncounted_ops:
        notes.append("Uncounted ops (no cost formula): " + ", ".join(
            f"{op} x{calls}" for op, calls in sorted(report.uncounted_ops.items())))
    notes += [f"Note: {n}" for n in report.notes]
    return title, headers, rows, notes


# ---------------------------------------------------------------------- memory
def _is_memory(result) -> bool:
    return hasattr(result, "peak_bytes") and hasattr(result, "by_category")


def _memory_parts(m):
    """(title, category headers, category rows, lines below) of a memory report."""
    precision = f"{m.dtype} autocast" if m.autocast else m.dtype
    step = f"training step ({m.optimizer})" if m.mode == "train" else "inference step"
    how = "predicted on meta" if m.device == "meta" else f"measured on {m.device}"
    title = (f"Memory of one {step}: {m.model} | input {m.inputs} | batch {m.batch_size} | {precision} | "
             f"{how}, sizes as the {m.target.upper()} allocator makes them")
    peak = m.peak_bytes or 1
    rows = [[c, binary(v), f"{v / peak * 100:.1f}"] for c, v in m.by_category.items()]
    rows.append(["Total (peak)", binary(m.peak_bytes), "100.0"])
    lines = [f"Peak: {binary(m.peak_bytes)} ({m.peak_bytes:,} bytes) during {m.peak_at}"]
    if m.mode == "train":  # a layer's saved bytes include its sublayers'; the report's sum counts each once
        lines.append(f"Saved for backward by the layers: {binary(m.saved_bytes)}")
    if getattr(m, "fit_budget", None) is not None:
        largest = (f"{m.fit_batch} (predicted peak at most {binary(m.fit_bytes)}" if m.fit_batch else
                   f"none: batch 1 needs {binary(getattr(m, 'fit_batch_1_bytes', None) or 0)} (predicted peak")
        lines.append(f"Largest batch that fits in {m.fit_budget}: {largest}; allocator segments and the CUDA "
                     f"context not included)")
    lines += [f"Note: {n}" for n in m.notes]
    return title, ["Category", "At the peak", "%"], rows, lines


def _memory_layer_rows(m, depth):
    headers = ["Layer", "Type", "Saved for backward", "Peak in forward", "Peak in backward"]
    rows = [["  " * (r.depth - 1) + r.name, r.type, binary(r.saved_bytes), binary(r.forward_peak),
             binary(r.backward_peak) if m.mode == "train" else "-"]
            for r in m.layers if depth is None or r.depth <= depth]
    return headers, rows


def memory_table(m, depth: int | None = None, tablefmt: str = "simple") -> str:
    """A memory report: bytes by category at the peak, then the layers (down to ``depth``,
    2 by default) with what each saved for backward (its sublayers' included, as Params and MACs
    include them) and the live bytes at their highest while it ran."""
    title, headers, rows, lines = _memory_parts(m)
    layer_headers, layer_rows = _memory_layer_rows(m, 2 if depth is None else depth)
    if tablefmt == "github":
        return "\n".join([f"### {title}", "", tabulate(rows, headers=headers, tablefmt="github"), "",
                          *(f"- {line}" for line in lines), "",
                          tabulate(layer_rows, headers=layer_headers, tablefmt="github"), ""])
    return "\n".join([title, tabulate(rows, headers=headers, tablefmt=tablefmt,
                                        colalign=("left", "right", "right")), *lines, "",
                      tabulate(layer_rows, headers=layer_headers, tablefmt=tablefmt)])
