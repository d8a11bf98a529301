"""Renderings of a ProfileReport: terminal table, Markdown, JSON, CSV. All read the same records."""

from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from .records import LayerRecord, ProfileReport

CONVENTION = "1 MAC = 2 FLOPs; FLOPs = 2 x MACs + all other floating-point ops"
CSV_FIELDS = ["name", "type", "depth", "params", "calls", "output_shape", "macs", "flops", "bytes",
              "intensity", "backward_macs", "backward_flops", "backward_bytes"]


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


def _rows(report: ProfileReport, depth: int | None):
    rows = []
    for r in report.layers:
        if depth is not None and r.depth > depth:
            continue
        rows.append(_row(r, "  " * (r.depth - 1) + r.name, report.backward))
    rows.append(_row(report.model_record, "Total", report.backward))
    return rows


def _row(r: LayerRecord, label: str, backward: bool):
    shape = _shape(r.output_shape) if r.ran else "(not run)"
    row = [label, r.type, shape, si(r.params), si(r.macs), si(r.flops), si(r.bytes, "B"),
           f"{r.intensity:.1f}"]
    if backward:
        row += [si(r.backward_flops), si(r.total_flops)]
    return row


def _headers(backward: bool):
    headers = ["Layer", "Type", "Output", "Params", "MACs", "FLOPs", "Bytes", "FLOP/B"]
    if backward:
        headers += ["Bwd FLOPs", "Train FLOPs"]
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
    table = tabulate(_rows(report, depth), headers=_headers(report.backward), tablefmt="simple",
                     colalign=("left", "left", "left") + ("right",) * (len(_headers(report.backward)) - 3))
    return "\n".join([_title(report), table, *_summary(report)])


def to_markdown(report: ProfileReport, depth: int | None = None) -> str:
    table = tabulate(_rows(report, report.depth if depth is None else depth),
                     headers=_headers(report.backward), tablefmt="github")
    summary = "\n".join(f"- {line}" for line in _summary(report))
    return f"### {_title(report)}\n\n{table}\n\n{summary}\n"


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
