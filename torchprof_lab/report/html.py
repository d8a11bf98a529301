"""The HTML report: one self-contained page for any result. CSS and script are inline, the charts
are inline SVG drawn here, and the page's Content-Security-Policy forbids fetching anything, so it
opens offline and travels as one file.

``render.render(result, "html")`` calls ``page`` with the text of the result's tables as the
other formats write them (render.py imports this module, so this one imports nothing of it).
From the result's fields this module draws what only a page shows: the per-layer tree (sorted by
any column on the raw values kept in data- attributes, collapsed by subtree or depth), the batch
sweep, the roofline and the memory timeline. Every string is escaped: names are the user's text.
"""

from __future__ import annotations

import math
import re
from html import escape

from .units import binary, output_text, si

CATEGORY_COLOURS = ("#4c78a8", "#9ecae9", "#f58518", "#e45756", "#54a24b", "#b279a2", "#eeca3b", "#9d755d")
WRAPPED = ("Type", "Output")  # the layer table's text columns that may wrap (the names wrap too)
TIMELINE_POINTS = 600  # a longer memory timeline is drawn from this many buckets, each at its highest


def _e(value) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    """An SVG coordinate."""
    return f"{value:.1f}"


# ---------------------------------------------------------------------- the page
def check_depth(depth) -> None:
    """``depth`` of a page is None (every layer shown at first) or a positive integer."""
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth must be a positive integer or None, got {depth!r}")


def page(result, text, depth: int | None = None) -> str:
    """The HTML page of ``result``. ``text`` is (title, lines, tables) as render.py writes them:
    the title line, the lines under it (a profile's totals) and named tables (title, headers,
    rows, notes): ``timing``, ``memory``, ``memory_layers`` or ``table``. ``depth`` is the layer
    tree's depth shown at first (every layer is in the page)."""
    check_depth(depth)
    title, lines, tables = text
    profile = hasattr(result, "model_record")
    timing = getattr(result, "timing", None) if profile else (result if "timing" in tables else None)
    memory = getattr(result, "memory", None) if profile else (result if "memory" in tables else None)
    sections = []
    if profile:
        sections.append(("totals", "Totals", _totals(result, lines)))
        sections.append(("layers", "Layers", _layer_tree(result, depth)))
    if "timing" in tables:
        sections.append(("timing", "Timing", _text_table(tables["timing"]) + _batch_charts(timing)))
    if profile and (roofline := _roofline(result)):
        sections.append(("roofline", "Roofline", roofline))
    if "memory" in tables:
        body = _text_table(tables["memory"]) + _timeline(memory)
        if "memory_layers" in tables:
            body += _text_table(tables["memory_layers"])
        sections.append(("memory", "Memory", body))
    if "table" in tables:
        sections.append(("result", "Results", _text_table(tables["table"], caption=False)))
    if timing is not None:
        sections.append(("hardware", "Hardware", _hardware(timing)))
    heading = getattr(result, "model", None) or title
    return _document(str(heading), title, _facts(result, timing, memory), sections)


def _document(heading: str, title: str, facts: str, sections) -> str:
    nav = "".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections) if len(sections) > 1 else ""
    lead = f'<p class="lead">{_e(title)}</p>' if title != heading else ""
    body = "".join(f'<section id="{key}"><h2>{_e(name)}</h2>{html}</section>' for key, name, html in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(heading)} - torchprof_lab</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(heading)}</h1>{lead}{facts}</header>"
        f"{f'<nav>{nav}</nav>' if nav else ''}<main>{body}</main>"
        "<footer>torchprof_lab report: one file, nothing fetched. FLOPs = 2 x MACs + all other "
        "floating-point ops.</footer>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def _facts(result, timing, memory) -> str:
    """The run's conditions as chips: input, batch, device, precision, mode, then the environment."""
    pairs = [("input", getattr(result, "inputs", None) or getattr(result, "input", None)),
             ("batch", getattr(result, "batch_size", None)), ("device", getattr(result, "device", None)),
             ("precision", getattr(result, "dtype", None)), ("mode", getattr(result, "mode", None))]
    if timing is not None:
        pairs += [("clock", timing.clock)] + [(k.replace("_", " "), v) for k, v in timing.environment.items()]
    elif memory is not None:
        pairs.append(("allocator", memory.target))
    items = "".join(f"<li><b>{_e(k)}</b>{_e(v)}</li>" for k, v in pairs if v is not None and v != "")
    return f'<ul class="facts">{items}</ul>' if items else ""


def _text_table(parts, caption: bool = True) -> str:
    """A table as the text formats write it: its title, headers, rows and the notes below."""
    title, headers, rows, notes = parts
    numeric = [i > 0 and all(_numeric(row[i]) for row in rows if i < len(row)) for i in range(len(headers))]
    align = ['class="num"' if n else "" for n in numeric]
    head = "".join(f"<th {a}>{_e(h)}</th>" for a, h in zip(align, headers))
    body = "".join("<tr>" + "".join(f"<td {a}>{_e(c)}</td>" for a, c in zip(align, row)) + "</tr>" for row in rows)
    top = f'<p class="caption">{_e(title)}</p>' if caption and title else ""
    below = "".join(f"<li>{_e(n)}</li>" for n in notes)
    table = f'<div class="scroll"><table class="text"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    return top + (table if headers else "") + (f'<ul class="notes">{below}</ul>' if below else "")


def _numeric(cell) -> bool:
    """'12.5', '1,578', '4.1 GFLOP/s', '3.2x', '-': a number (or none), right-aligned."""
    text = str(cell).strip().rstrip("%x").split(" ")[0].replace(",", "")
    try:
        float(text)
    except ValueError:
        return text == "-"
    return True


# ---------------------------------------------------------------------- totals and the layer tree
def _totals(report, lines) -> str:
    cards = [("Parameters", f"{report.params:,}"), ("MACs", si(report.macs)), ("FLOPs", si(report.flops)),
             ("Bytes moved", si(report.bytes, "B")), ("FLOP per byte", f"{report.intensity:.1f}")]
    if report.backward:
        cards.append(("Training step FLOPs", si(report.total_flops)))
    timed = [r for r in report.timing.rows if r.ok] if report.timing is not None else []
    if timed:
        first = timed[0]
        cards.append((f"p50 latency, batch {first.batch_size}", f"{first.latency.p50 * 1e3:.3f} ms"))
        best = max(timed, key=lambda r: r.samples_per_s)
        cards.append((f"Samples/s, batch {best.batch_size}", f"{best.samples_per_s:,.1f}"))
    if getattr(report, "memory", None) is not None:
        cards.append(("Peak memory", binary(report.memory.peak_bytes)))
    html = "".join(f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>'
                   for k, v in cards)
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f'<div class="cards">{html}</div><ul class="summary">{items}</ul>'


def _numel(record):
    shape = record.output_shape
    if not record.ran or not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        return None
    return math.prod(shape)


def _ms(value) -> str:
    return f"{value * 1e3:.3f}"


def _columns(report):
    """The tree's columns: (header, kind, raw value of a record or None, its text). The raw value is
    what the column sorts on; the columns are the text table's, with the memory ones added."""
    def raw(name):
        return lambda r: getattr(r, name)

    columns = [("Layer", "text", raw("name"), str), ("Type", "text", raw("type"), str),
               ("Output", "num", _numel, None), ("Params", "num", raw("params"), si),
               ("MACs", "num", raw("macs"), si), ("FLOPs", "num", raw("flops"), si),
               ("Bytes", "num", raw("bytes"), lambda v: si(v, "B")),
               ("FLOP/B", "num", raw("intensity"), lambda v: f"{v:.1f}")]
    if report.backward:
        columns += [("Bwd FLOPs", "num", raw("backward_flops"), si), ("Train FLOPs", "num", raw("total_flops"), si)]
    if any(r.bound is not None for r in report.layers):
        columns += [("Bound", "text", raw("bound"), str), ("Roofline ms", "num", lambda r: r.min_time or None, _ms)]
    if any(r.latency is not None for r in report.layers):
        columns.append(("Latency ms", "num", raw("latency"), _ms))
        if any(r.bound is not None for r in report.layers):
            columns.append(("x roofline", "num", raw("time_over_bound"), lambda v: f"{v:.1f}"))
    memory = getattr(report, "memory", None)
    if memory is not None:
        by_name = {m.name: m for m in memory.layers}
        whole = _memory_totals(memory)

        def mem(field):
            return lambda r: (getattr(by_name[r.name], field) if r.name in by_name
                              else whole[field] if r is report.model_record else None)

        if memory.mode == "train":
            columns.append(("Saved for bwd", "num", mem("saved_bytes"), binary))
        columns.append(("Peak in fwd", "num", mem("forward_peak"), binary))
        if memory.mode == "train":
            columns.append(("Peak in bwd", "num", mem("backward_peak"), binary))
    return columns


def _memory_totals(memory) -> dict:
    """The Total row's memory cells: what the layers saved for backward, and the step's live bytes
    at their highest in its forward and its backward (from the timeline of the reported step, as
    each layer's figures are; None without a timeline)."""
    peaks: dict[str, int] = {}
    for point in memory.timeline:
        if point.phase in ("forward", "backward") and point.total > peaks.get(point.phase, -1):
            peaks[point.phase] = point.total
    return {"saved_bytes": memory.saved_bytes, "forward_peak": peaks.get("forward"),
            "backward_peak": peaks.get("backward")}


def _parents(layers) -> list[int | None]:
    """The index of each layer's parent in the pre-order list (None at the top)."""
    parents, open_rows = [], []  # open_rows[d - 1]: the last layer seen at depth d
    for i, record in enumerate(layers):
        del open_rows[max(record.depth - 1, 0):]
        parents.append(open_rows[-1] if open_rows else None)
        open_rows.append(i)
    return parents


_BREAKS = re.compile(r"(?<=\.)(?=.)|(?<=[a-z0-9])(?=[A-Z][a-z])")


def _breakable(text: str) -> str:
    """``text`` escaped, with line-break opportunities (<wbr>) after a name's dots and between the
    words of a CamelCase type: a narrow window wraps the layer table's names and types there (and
    outputs at their spaces; a shape stays whole) instead of hiding its last columns."""
    return "<wbr>".join(_e(part) for part in _BREAKS.split(text))


def _cell(kind: str, value, fmt, record, wrap: bool = False) -> str:
    """A cell: its text, and the raw value it sorts on in data-v (empty when there is none);
    ``wrap``: its text may break over lines (the Type and Output columns)."""
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    if fmt is None:  # the output shape, written as the text table writes it
        shown = output_text(record)
    else:
        shown = "-" if value is None else fmt(value)
    classes = "num" if kind == "num" else f"bound-{value}" if value in ("memory", "compute") else ""
    classes = f"{classes} wrap".strip() if wrap else classes
    raw = "" if value is None else repr(value) if kind == "num" else value
    return f'<td class="{classes}" data-v="{_e(raw)}">{_breakable(shown) if wrap else _e(shown)}</td>'


def _layer_tree(report, depth) -> str:
    columns = _columns(report)
    parents = _parents(report.layers)
    with_children = {p for p in parents if p is not None}
    deepest = max((r.depth for r in report.layers), default=0)
    head = "".join(f'<th class="{"num" if kind == "num" else ""}" data-kind="{kind}" aria-sort="none">'
                   f'<button class="sort" type="button">{_e(name)}</button></th>' for name, kind, _, _ in columns)
    rows = []
    for i, (record, parent) in enumerate(zip(report.layers, parents)):
        toggle = ('<button class="toggle" type="button" aria-expanded="true" title="fold or unfold">&#9662;</button>'
                  if i in with_children else '<span class="toggle-space"></span>')
        cells = [f'<td class="name" style="--d:{max(record.depth - 1, 0)}" data-v="{_e(record.name)}">{toggle}'
                 f'<span class="lname">{_breakable(record.name)}</span></td>']
        cells += [_cell(kind, get(record), fmt, record, name in WRAPPED) for name, kind, get, fmt in columns[1:]]
        rows.append(f'<tr data-id="{i}" data-parent="{"" if parent is None else parent}" data-depth="{record.depth}" '
                    f'data-name="{_e(record.name)}">{"".join(cells)}</tr>')
    total = report.model_record
    foot = ['<td class="name"><span class="toggle-space"></span>Total</td>']
    foot += [_cell(kind, get(total), fmt, total, name in WRAPPED) for name, kind, get, fmt in columns[1:]]
    chosen = depth if depth is not None and 1 <= depth < deepest else None
    options = "".join(f'<option value="{d}"{" selected" if d == chosen else ""}>{d}</option>'
                      for d in range(1, deepest))
    options += f'<option value="all"{" selected" if chosen is None else ""}>all</option>'
    controls = (f'<div class="controls"><label>Depth <select id="depth">{options}</select></label>'
                '<button type="button" id="tree-order">Tree order</button>'
                '<span>Click a column to sort (largest first, again to reverse); &#9662; folds a layer.</span></div>')
    return (f'{controls}<div class="scroll"><table id="layer-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody><tfoot><tr>{"".join(foot)}</tr></tfoot></table></div>')


# ---------------------------------------------------------------------- charts
class _Scale:
    """Data to pixels along one axis: linear, or logarithmic in ``base``."""

    def __init__(self, lo: float, hi: float, start: float, end: float, base: float | None = None):
        self.base = base
        self.lo, self.hi = self._f(lo), self._f(hi)
        if self.hi == self.lo:
            self.lo, self.hi = self.lo - 1, self.hi + 1
        self.start, self.end = start, end

    def _f(self, value: float) -> float:
        return math.log(value, self.base) if self.base else value

    def __call__(self, value: float) -> float:
        return self.start + (self._f(value) - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def _linear_ticks(hi: float, count: int = 5) -> list[float]:
    """0, step, 2 x step ... to the first tick at or above ``hi``; the step 1, 2 or 5 x 10^k."""
    if not hi > 0:
        return [0.0, 1.0]
    raw = hi / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(hi / step - 1e-9) + 1)]


def _byte_ticks(hi: float) -> list[tuple[float, str]]:
    unit, name = next(((2 ** (10 * k), n) for k, n in ((3, "GiB"), (2, "MiB"), (1, "KiB"))
                       if hi >= 2 ** (10 * k)), (1, "B"))
    return [(t * unit, f"{t:g} {name}") for t in _linear_ticks(hi / unit)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """The powers of ten between lo and hi; 1, 2 and 5 times them where fewer than two fall inside."""
    ks = range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
    decades = [10.0 ** k for k in ks if lo <= 10.0 ** k <= hi]
    return decades if len(decades) >= 2 else [m * 10.0 ** k for k in ks for m in (1, 2, 5) if lo <= m * 10.0 ** k <= hi]


def _frame(x: _Scale, y: _Scale, xticks, yticks, xlabel: str, ylabel: str) -> list[str]:
    """Grid, ticks and axis labels of a chart whose plot area the scales span."""
    left, right, top, bottom = x.start, x.end, y.end, y.start
    out = []
    for value, label in yticks:
        py = y(value)
        out.append(f'<line class="grid" x1="{_n(left)}" x2="{_n(right)}" y1="{_n(py)}" y2="{_n(py)}"/>'
                   f'<text x="{_n(left - 6)}" y="{_n(py + 4)}" text-anchor="end">{_e(label)}</text>')
    for value, label in xticks:
        px = x(value)
        out.append(f'<line class="grid" x1="{_n(px)}" x2="{_n(px)}" y1="{_n(top)}" y2="{_n(bottom)}"/>'
                   f'<text x="{_n(px)}" y="{_n(bottom + 16)}" text-anchor="middle">{_e(label)}</text>')
    out.append(f'<path class="axis" d="M{_n(left)} {_n(top)}V{_n(bottom)}H{_n(right)}"/>')
    out.append(f'<text class="label" x="{_n((left + right) / 2)}" y="{_n(bottom + 34)}" text-anchor="middle">'
               f'{_e(xlabel)}</text>')
    out.append(f'<text class="label" transform="translate({_n(left - 52)} {_n((top + bottom) / 2)}) rotate(-90)" '
               f'text-anchor="middle">{_e(ylabel)}</text>')
    return out


def _svg(key: str, title: str, width: int, height: int, parts) -> str:
    return (f'<svg class="chart" id="{key}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{_e(title)}">'
            f'<text class="title" x="{width / 2:.0f}" y="16" text-anchor="middle">{_e(title)}</text>'
            f'{"".join(parts)}</svg>')


def _plain(value: float) -> str:
    """A chart's number: 2,500 or 0.082 as they are, 12.3 K from ten thousand on."""
    return si(value) if abs(value) >= 1e4 else f"{value:,.4g}"


def _legend(items) -> str:
    """(colour, label, css style of the swatch) per series, as an HTML list under a chart."""
    html = "".join(f'<li><span class="swatch" style="background:{colour};{style}"></span>{_e(label)}</li>'
                   for colour, label, style in items)
    return f'<ul class="legend">{html}</ul>'


def _polyline(points, x, y) -> str:
    return "M" + "L".join(f"{_n(x(a))} {_n(y(b))}" for a, b in points)


def _batch_charts(timing) -> str:
    """samples/s and latency (p50, p90, the p50-p99 band) against batch; OOM rows and the largest
    batch that fits marked."""
    ok = [r for r in timing.rows if r.ok]
    if not ok:
        return ""
    sizes = sorted({r.batch_size for r in timing.rows} | ({timing.max_batch} if timing.max_batch else set()))
    lo, hi = (sizes[0], sizes[-1]) if sizes[0] < sizes[-1] else (sizes[0] / 2, sizes[0] * 2)
    width, height, box = 470, 300, (70, 450, 30, 250)  # left, right, top, bottom

    def chart(key, title, ylabel, series, band=None):
        top_value = max(b for _, pts, _, _ in series for _, b in pts)
        if band:
            top_value = max(top_value, max(b for _, b in band[1]))
        yticks = _linear_ticks(top_value)
        x = _Scale(lo, hi, box[0], box[1], base=2)
        y = _Scale(0, yticks[-1], box[3], box[2])
        parts = _frame(x, y, [(b, str(b)) for b in sizes], [(t, _plain(t)) for t in yticks], "batch size", ylabel)
        if band:
            outline = band[0] + band[1][::-1]
            parts.append(f'<path class="mark band" d="{_polyline(outline, x, y)}Z"><title>p50 to p99</title></path>')
        for label, points, colour, dash in series:
            parts.append(f'<path class="mark line" d="{_polyline(points, x, y)}" stroke="{colour}" '
                         f'stroke-dasharray="{dash}" fill="none"/>')
            parts += [f'<circle class="mark point" cx="{_n(x(a))}" cy="{_n(y(b))}" r="3.5" fill="{colour}">'
                      f'<title>{_e(label)}, batch {a}: {_e(_plain(b))}</title></circle>' for a, b in points]
        for row in timing.rows:
            if not row.ok:
                px = x(row.batch_size)
                parts.append(f'<line class="oom" data-batch="{row.batch_size}" x1="{_n(px)}" x2="{_n(px)}" '
                             f'y1="{_n(box[2])}" y2="{_n(box[3])}"><title>{_e(row.status)} at batch '
                             f'{row.batch_size}</title></line><text class="oom-label" x="{_n(px - 4)}" '
                             f'y="{_n(box[2] + 12)}" text-anchor="end">{_e(row.status)}</text>')
        if timing.max_batch:
            px = x(timing.max_batch)
            parts.append(f'<line class="fit" x1="{_n(px)}" x2="{_n(px)}" y1="{_n(box[2])}" y2="{_n(box[3])}"/>'
                         f'<text x="{_n(px + 4)}" y="{_n(box[2] + 24)}">fits: {_e(timing.max_batch_text)}</text>')
        return _svg(key, title, width, height, parts)

    groups: dict = {}  # a token model's rows: one line per sequence length
    for r in sorted(ok, key=lambda r: r.batch_size):
        groups.setdefault(getattr(r, "tokens_per_sample", None), []).append(r)
    legend = []
    if len(groups) > 1:
        colours = dict(zip(groups, CATEGORY_COLOURS * len(groups)))
        per_s = [(f"seq {seq}", [(r.batch_size, r.samples_per_s) for r in rows], colours[seq], "")
                 for seq, rows in groups.items()]
        p50s = [(f"seq {seq}, p50", [(r.batch_size, r.latency.p50 * 1e3) for r in rows], colours[seq], "")
                for seq, rows in groups.items()]
        throughput = chart("chart-throughput", "Throughput (one batch at a time)", "samples/s", per_s)
        latency = chart("chart-latency", "Latency per batch (p50)", "ms", p50s)
        legend += [(colours[seq], f"sequence length {seq}", "") for seq in groups]
    else:
        (rows,) = groups.values()
        series = [("one batch at a time (batch / p50)", [(r.batch_size, r.samples_per_s) for r in rows], "#2563eb", "")]
        back_to_back = [(r.batch_size, r.throughput_samples_per_s) for r in rows if r.throughput_samples_per_s]
        if back_to_back:
            series.append(("back to back", back_to_back, "#7c3aed", "5 4"))
        throughput = chart("chart-throughput", "Throughput", "samples/s", series)
        p50, p90, p99 = ([(r.batch_size, getattr(r.latency, q) * 1e3) for r in rows] for q in ("p50", "p90", "p99"))
        latency = chart("chart-latency", "Latency per batch", "ms",
                        [("p50", p50, "#059669", ""), ("p90", p90, "#059669", "2 3")], band=(p50, p99))
        legend.append(("#2563eb", "samples/s, one batch at a time", ""))
        if back_to_back:
            legend.append(("#7c3aed", "samples/s, back to back", ""))
        legend += [("#059669", "p50 latency (p90 dotted)", ""), ("#05966933", "p50 to p99", "")]
    if any(not r.ok for r in timing.rows):
        legend.append(("#dc2626", "out of memory (or failed) at that batch", ""))
    return f'<div class="charts">{throughput}{latency}</div>{_legend(legend)}'


def _roofline_points(report):
    """(record, intensity, FLOP/s, how) of each leaf layer with work: measured (FLOPs / latency)
    where per-layer timing ran, else at its roofline bound."""
    with_work_below = {name[:i] for name in (r.name for r in report.layers if r.flops)
                       for i, c in enumerate(name) if c == "."}
    points = []
    for r in report.layers:
        if not (r.flops and r.bytes) or r.name in with_work_below:
            continue
        if r.latency:
            points.append((r, r.intensity, r.flops / r.latency, "measured"))
        elif r.min_time:
            points.append((r, r.intensity, r.flops / r.min_time, "at its bound"))
    return points


def _roofline(report) -> str:
    timing = report.timing
    ceiling = getattr(timing, "ceiling", None) if timing is not None else None
    if ceiling is None or not ceiling.roof_flops or not ceiling.roof_bandwidth:
        return ""
    points = _roofline_points(report)
    achieved = report.achieved_flops
    roof, bandwidth, ridge = ceiling.roof_flops, ceiling.roof_bandwidth, ceiling.ridge_point
    intensities = [i for _, i, _, _ in points] + [ridge] + ([report.intensity] if report.intensity else [])
    lo, hi = min(intensities) / 4, max(intensities) * 4
    speeds = [f for _, _, f, _ in points] + [roof, lo * bandwidth] + ([achieved] if achieved else [])
    if ceiling.peak_flops:
        speeds.append(ceiling.peak_flops)
    ylo, yhi = min(speeds) / 2, max(speeds) * 2
    width, height = 780, 440
    x = _Scale(lo, hi, 80, 760, base=10)
    y = _Scale(ylo, yhi, 390, 30, base=10)
    parts = _frame(x, y, [(t, f"{t:g}") for t in _log_ticks(lo, hi)], [(t, si(t)) for t in _log_ticks(ylo, yhi)],
                   "arithmetic intensity (FLOPs per byte moved, no fusion assumed)", "FLOP/s")
    roof_line = [(lo, lo * bandwidth), (ridge, roof), (hi, roof)]
    parts.append(f'<path class="mark roof" d="{_polyline(roof_line, x, y)}"><title>roof: {_e(si(roof, "FLOP/s"))}, '
                 f'{_e(si(bandwidth, "B/s"))}, ridge {ridge:.1f} FLOP/B</title></path>')
    if ceiling.peak_flops and ceiling.peak_flops > roof:
        py = y(ceiling.peak_flops)
        parts.append(f'<line class="peak" x1="{_n(x.start)}" x2="{_n(x.end)}" y1="{_n(py)}" y2="{_n(py)}"/>')
    parts.append(f'<line class="ridge" x1="{_n(x(ridge))}" x2="{_n(x(ridge))}" y1="{_n(y.end)}" y2="{_n(y.start)}"/>')
    for r, intensity, speed, how in points:
        parts.append(f'<circle class="mark layer bound-{_e(r.bound or "none")}" data-name="{_e(r.name)}" '
                     f'cx="{_n(x(intensity))}" cy="{_n(y(speed))}" r="4.5"><title>{_e(r.name)} ({_e(r.type)}): '
                     f'{intensity:.1f} FLOP/B, {_e(si(speed, "FLOP/s"))} {how}</title></circle>')
    if achieved and report.intensity:
        cx, cy = x(report.intensity), y(achieved)
        star = " ".join(f"{_n(cx + (9 if k % 2 == 0 else 4) * math.sin(k * math.pi / 5))},"
                        f"{_n(cy - (9 if k % 2 == 0 else 4) * math.cos(k * math.pi / 5))}" for k in range(10))
        parts.append(f'<polygon class="mark model" points="{star}"><title>whole model: {report.intensity:.1f} FLOP/B, '
                     f'{_e(si(achieved, "FLOP/s"))}</title></polygon>')
    title = f"{report.model}, batch {report.batch_size}, {ceiling.device} ({ceiling.dtype})"
    roofs = f"roof: {si(roof, 'FLOP/s')}, {si(bandwidth, 'B/s')} (ridge {ridge:.1f} FLOP/B)"
    legend = [("#111827", roofs, "height:3px")]
    if ceiling.peak_flops and ceiling.peak_flops > roof:
        legend.append(("#9ca3af", f"theoretical peak: {si(ceiling.peak_flops, 'FLOP/s')}", "height:3px"))
    how = "measured, FLOPs / latency" if any(p[3] == "measured" for p in points) else "at their roofline bound"
    legend += [("#2563eb", f"memory-bound layers ({how})", "border-radius:50%"),
               ("#ea580c", f"compute-bound layers ({how})", "border-radius:50%")]
    if achieved:
        legend.append(("#dc2626", f"whole model: {si(achieved, 'FLOP/s')}", ""))
    return _svg("chart-roofline", f"Roofline: {title}", width, height, parts) + _legend(legend)


def _downsample(points, limit: int):
    """At most ``limit`` points, each the highest of its bucket, so the peak stays drawn."""
    if len(points) <= limit:
        return list(points)
    size = len(points) / limit
    return [max(points[int(k * size):int((k + 1) * size)], key=lambda p: p.total) for k in range(limit)]


def _timeline(memory) -> str:
    """Live bytes through the step, stacked by category, the phases behind, the peak marked."""
    points = _downsample(memory.timeline, TIMELINE_POINTS)
    if not points:
        return ""
    names = list(memory.by_category)
    if len(names) != len(points[0].by_category):
        names = [f"category {k}" for k in range(len(points[0].by_category))]
    first, last = points[0].index, points[-1].index + 1
    top_value = max(max(p.total for p in points), memory.peak_bytes)
    yticks = _byte_ticks(top_value)
    width, height = 900, 320
    x = _Scale(first, last, 80, 880)
    y = _Scale(0, yticks[-1][0], 270, 40)
    parts = []
    run_start = 0
    for k in range(1, len(points) + 1):  # the phases, as bands behind the areas
        if k == len(points) or points[k].phase != points[run_start].phase:
            x0, x1 = x(points[run_start].index), x(points[k].index if k < len(points) else last)
            parts.append(f'<rect class="phase phase-{_e(points[run_start].phase)}" x="{_n(x0)}" y="{_n(y.end)}" '
                         f'width="{_n(x1 - x0)}" height="{_n(y.start - y.end)}"/>')
            if x1 - x0 > 44:
                parts.append(f'<text class="phase-label" x="{_n((x0 + x1) / 2)}" y="{_n(y.end - 5)}" '
                             f'text-anchor="middle">{_e(points[run_start].phase)}</text>')
            run_start = k
    xticks = [(first + t, f"{first + t:g}") for t in _linear_ticks(last - first) if first + t <= last]
    parts += _frame(x, y, xticks, yticks, "allocation or free, in order", "live bytes")
    below = [0] * len(points)
    legend = []
    for c, name in enumerate(names):
        values = [p.by_category[c] for p in points]
        if not any(values):
            continue
        tops = [b + v for b, v in zip(below, values)]
        ends = [p.index for p in points[1:]] + [last]
        upper = [(xy, t) for p, end, t in zip(points, ends, tops) for xy in (p.index, end)]
        lower = [(xy, b) for p, end, b in zip(points, ends, below) for xy in (p.index, end)]
        colour = CATEGORY_COLOURS[c % len(CATEGORY_COLOURS)]
        path = _polyline(upper + [(x_, y_) for x_, y_ in reversed(lower)], x, y)
        parts.append(f'<path class="mark area" data-category="{_e(name)}" d="{path}Z" fill="{colour}">'
                     f'<title>{_e(name)}: up to {_e(binary(max(values)))}</title></path>')
        at_peak = binary(memory.by_category.get(name, max(values)))
        legend.append((colour, f"{name.replace('_', ' ')} ({at_peak} at the peak)", ""))
        below = tops
    peak = max(points, key=lambda p: p.total)
    px = x(peak.index)
    side = 'text-anchor="end"' if px > x.end - 220 else ""  # the label stays inside the chart
    parts.append(f'<line class="peak-line" x1="{_n(px)}" x2="{_n(px)}" y1="{_n(y.end)}" y2="{_n(y.start)}"/>'
                 f'<text class="peak-label" x="{_n(px - 4 if side else px + 4)}" y="{_n(y(peak.total) - 6)}" '
                 f'{side}>peak '
                 f'{_e(binary(memory.peak_bytes))}{" in " + _e(peak.layer) if peak.layer else ""}</text>')
    note = f" (drawn from {len(points)} of {len(memory.timeline)} points, each bucket at its highest)" \
        if len(points) < len(memory.timeline) else ""
    title = f"Memory timeline: live bytes by category{note}"
    return _svg("chart-memory", title, width, height, parts) + _legend(legend)


# ---------------------------------------------------------------------- hardware
def _hardware(timing) -> str:
    rows = []
    c = timing.ceiling
    if c is not None:
        rows += [("Device", c.device), ("Precision", c.dtype),
                 ("Theoretical peak", si(c.peak_flops, "FLOP/s") if c.peak_flops else "unknown"),
                 ("Peak bandwidth", si(c.peak_bandwidth, "B/s"))]
        if c.attainable_flops:
            measured = f"{si(c.roof_flops, 'FLOP/s')} (matmul), {si(c.roof_bandwidth, 'B/s')} (copy)"
            rows.append(("Measured roofs", measured))
        if c.boost_formula:
            rows.append(("At the boost clock", c.boost_formula))
        if c.roof_flops and c.roof_bandwidth:
            rows.append(("Ridge point", f"{c.ridge_point:.1f} FLOP/B"))
        rows.append(("Source", c.source))
        rows += [("Note", n) for n in c.notes]
    else:
        rows.append(("Ceiling", "none known for this device: no utilisation or roofline"))
    rows += [(k.replace("_", " ").capitalize(), v) for k, v in timing.environment.items()]
    rows += [("Timer", timing.clock)]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts-table"><tbody>{body}</tbody></table>'


CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--soft:#f8fafc;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#f3f4f6}
header{background:#fff;border-bottom:1px solid var(--line);padding:18px 32px 14px}
header h1{margin:0;font-size:22px}
.lead{margin:2px 0 10px;color:var(--muted)}
.facts{display:flex;flex-wrap:wrap;gap:6px;margin:0;padding:0;list-style:none}
.facts li{background:var(--soft);border:1px solid var(--line);border-radius:999px;padding:1px 10px;font-size:12.5px}
.facts b{font-weight:600;color:var(--muted);margin-right:5px}
nav{position:sticky;top:0;z-index:3;background:#fffffff0;border-bottom:1px solid var(--line);padding:8px 32px;
 display:flex;gap:18px;height:38px}
nav a{color:var(--accent);text-decoration:none;font-weight:500}
main{max-width:1440px;margin:0 auto;padding:4px 24px 32px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:16px 0;
 scroll-margin-top:48px}
h2{margin:0 0 10px;font-size:17px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 24px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px;margin-bottom:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px;background:var(--soft)}
.card .k{font-size:12px;color:var(--muted)}
.card .v{font-size:19px;font-weight:600;font-variant-numeric:tabular-nums}
.summary,.notes{margin:6px 0 0;padding-left:18px}
.notes,.caption{color:var(--muted);font-size:12.5px}
.caption{margin:0 0 6px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:13px}
table.text{width:auto;min-width:60%}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th.num,td.num{text-align:right}
table.text td{white-space:normal;min-width:60px}
table.text td.num{white-space:nowrap}
table.text td:first-child{white-space:pre}
thead th{background:#f9fafb;font-weight:600;color:#374151}
tbody tr:hover{background:#eff6ff}
tfoot td{font-weight:600;border-top:2px solid #d1d5db}
tr[hidden]{display:none}
th button.sort{all:unset;cursor:pointer}
th[aria-sort=descending] button.sort::after{content:" \\25BC";font-size:9px}
th[aria-sort=ascending] button.sort::after{content:" \\25B2";font-size:9px}
td.name{padding-left:calc(6px + var(--d,0) * 18px)}
#layer-table{font-size:12px}
#layer-table th,#layer-table td{padding:3px 5px}
#layer-table th{white-space:normal;vertical-align:bottom;font-size:11px}
#layer-table td.name,#layer-table td.wrap{white-space:normal}
#layer-table td.name{padding-left:calc(22px + var(--d,0) * 12px);text-indent:-18px}
button.toggle{border:0;background:none;cursor:pointer;width:18px;padding:0;color:var(--muted);font-size:12px}
.toggle-space{display:inline-block;width:18px}
td.bound-memory{color:#2563eb}
td.bound-compute{color:#ea580c}
.controls{display:flex;gap:14px;align-items:center;margin-bottom:8px;color:var(--muted);font-size:12.5px}
.controls button,.controls select{font:inherit;color:var(--fg)}
.facts-table th{width:190px;color:var(--muted);font-weight:500;vertical-align:top}
.facts-table td{white-space:normal}
.charts{display:flex;flex-wrap:wrap;gap:12px;margin-top:12px}
svg.chart{max-width:100%;height:auto;display:block;margin-top:10px}
svg text{font:11px system-ui,sans-serif;fill:#4b5563}
svg text.title{font-size:12.5px;font-weight:600;fill:#1f2937}
svg text.label{font-size:11.5px}
.grid{stroke:#eef0f3}
.axis{stroke:#9ca3af;fill:none}
.line{stroke-width:2}
.band{fill:#05966926;stroke:none}
.roof{stroke:#111827;stroke-width:2.5;fill:none}
.peak{stroke:#9ca3af;stroke-dasharray:6 4}
.ridge,.fit{stroke:#9ca3af;stroke-dasharray:2 3}
circle.layer{fill:#2563eb;fill-opacity:.75;stroke:#fff}
circle.bound-compute{fill:#ea580c}
.model{fill:#dc2626;stroke:#fff}
.oom{stroke:#dc2626;stroke-width:1.5;stroke-dasharray:5 3}
text.oom-label{fill:#dc2626;font-weight:600}
.area{stroke:none;fill-opacity:.85}
.phase{fill:#f3f4f6}
.phase-backward,.phase-optimizer{fill:#eef2ff}
.phase-label{fill:#9ca3af}
.peak-line{stroke:#dc2626;stroke-dasharray:3 3}
text.peak-label{fill:#dc2626;font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;list-style:none;padding:0;margin:6px 0 0;font-size:12.5px;
 color:#374151}
.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:6px;vertical-align:-1px}
"""

SCRIPT = """
"use strict";
(() => {
  const table = document.getElementById("layer-table");
  if (!table) return;
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const heads = Array.from(table.tHead.rows[0].cells);
  const byId = new Map(rows.map(r => [r.dataset.id, r]));
  const kids = new Map();
  for (const r of rows) {
    if (!kids.has(r.dataset.parent)) kids.set(r.dataset.parent, []);
    kids.get(r.dataset.parent).push(r);
  }
  const collapsed = new Set();
  const depth = document.getElementById("depth");
  let sorted = -1, direction = 0;

  function refresh() {  // a row shows when no layer above it is folded
    for (const r of rows) {
      let hide = false;
      for (let p = r.dataset.parent; p !== "" && !hide; p = byId.get(p).dataset.parent) hide = collapsed.has(p);
      r.hidden = hide;
      const toggle = r.querySelector("button.toggle");
      if (toggle) {
        const open = !collapsed.has(r.dataset.id);
        toggle.textContent = open ? "\\u25BE" : "\\u25B8";
        toggle.setAttribute("aria-expanded", String(open));
      }
    }
  }
  function showDepth(value) {  // fold every layer at that depth (and below) that has children
    collapsed.clear();
    if (value !== "all")
      for (const r of rows) if (kids.has(r.dataset.id) && +r.dataset.depth >= +value) collapsed.add(r.dataset.id);
    refresh();
  }
  function comparer(column, dir) {  // on the raw values; empty ones last; ties in tree order
    const numeric = heads[column].dataset.kind === "num";
    return (a, b) => {
      const x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
      const tie = a.dataset.id - b.dataset.id;
      if (x === "" || y === "") return (x === "") - (y === "") || tie;
      const c = numeric ? x - y : (x < y ? -1 : x > y ? 1 : 0);
      return c * dir || tie;
    };
  }
  function arrange(compare) {  // siblings sorted under their parent: the tree stays a tree
    const order = [];
    const walk = parent => {
      for (const r of (kids.get(parent) || []).slice().sort(compare)) { order.push(r); walk(r.dataset.id); }
    };
    walk("");
    body.append(...order);
  }
  function sortBy(column) {
    direction = column === sorted ? -direction : (heads[column].dataset.kind === "num" ? -1 : 1);
    sorted = column;
    const state = direction < 0 ? "descending" : "ascending";
    heads.forEach((h, i) => h.setAttribute("aria-sort", i === column ? state : "none"));
    arrange(comparer(column, direction));
  }
  table.tHead.addEventListener("click", e => {
    const head = e.target.closest("th");
    if (head) sortBy(heads.indexOf(head));
  });
  body.addEventListener("click", e => {
    const toggle = e.target.closest("button.toggle");
    if (!toggle) return;
    const id = toggle.closest("tr").dataset.id;
    if (collapsed.has(id)) collapsed.delete(id); else collapsed.add(id);
    refresh();
  });
  depth.addEventListener("change", () => showDepth(depth.value));
  document.getElementById("tree-order").addEventListener("click", () => {
    sorted = -1;
    heads.forEach(h => h.setAttribute("aria-sort", "none"));
    arrange((a, b) => a.dataset.id - b.dataset.id);
  });
  showDepth(depth.value);
})();
"""
