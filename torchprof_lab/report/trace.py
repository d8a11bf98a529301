"""The per-layer pass as a Chrome trace-event JSON object (ui.perfetto.dev, chrome://tracing).

One complete event ("X") per module call per timed run, nested as the calls were, with the
layer's counted MACs, FLOPs and bytes per call (its totals over its calls kept under
``layer_*_all_calls``) and parameters in its args, so summing spans counts no call twice; the
timed runs laid end to end (the gaps between them removed), a thread per batch size of the pass
(the per-layer pass runs at one: the first batch size that fits); on a
GPU, the NVML samples taken during the pass as counter tracks ("C"). In a training run, the time
after the model's forward (loss, backward, optimizer step: the hooks time forwards only) is one
span of its own, so the run's gap is labelled. Reads fields only: this module knows no result
class.
Format: the Trace Event Format document (Google, "JSON Object Format").
"""

from __future__ import annotations

import json

from ..errors import ProfilerError

PID = 1
REST_OF_STEP = "loss, backward and optimizer step (not split by layer)"
COUNTERS = (("watts", "GPU power", "W"), ("sm_clock_mhz", "SM clock", "MHz"),
            ("temperature_c", "GPU temperature", "C"))


def to_chrome_trace(report) -> dict:
    """{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}} of a profile timed with
    per_layer=True; ts and dur in microseconds."""
    timing = report.timing
    forwards = tuple(getattr(timing, "layer_forwards", None) or ())
    if not forwards:
        raise ProfilerError("this profile has no per-layer timing to trace: time it with per_layer=True "
                            "(--per-layer)")
    records = {r.name: r for r in report.layers}
    records[""] = report.model_record
    batches = list(dict.fromkeys(f.batch_size for f in forwards))
    tid = {batch: i + 1 for i, batch in enumerate(batches)}
    events = [_meta("process_name", None, f"{report.model} per-layer pass ({timing.device}, {timing.dtype}, "
                                          f"{timing.mode})")]
    events += [_meta("thread_name", tid[b], f"batch {b}") for b in batches]
    offsets = _run_offsets(forwards)
    for number, (forward, offset) in enumerate(zip(forwards, offsets), start=1):
        thread = tid[forward.batch_size]
        events.append({"name": f"timed run {number}", "cat": "run", "ph": "X", "pid": PID, "tid": thread,
                       "ts": offset * 1e6, "dur": forward.seconds * 1e6,
                       "args": {"run": number, "batch_size": forward.batch_size, "seconds": forward.seconds}})
        for span in forward.spans:
            record = records.get(span.name)
            events.append({"name": span.name or report.model_record.type, "cat": "layer", "ph": "X", "pid": PID,
                           "tid": thread, "ts": (offset + span.start) * 1e6, "dur": span.seconds * 1e6,
                           "args": _layer_args(span, record, number)})
        if timing.mode == "train":
            events += _rest_of_step(forward, offset, thread, number)
    events += _counters(getattr(timing, "layer_power", ()), forwards, offsets)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"model": report.model, "device": timing.device, "dtype": timing.dtype,
                          "mode": timing.mode, "clock": timing.clock, "batch_sizes": batches,
                          "timed_runs": len(forwards),
                          "timeline": "the per-layer pass's timed runs laid end to end, the gaps between them "
                                      "removed; spans are module calls timed with hooks (on a GPU each "
                                      "layer's end is synchronized)" + (
                                          "; in a training run, the span after the forward is the loss, "
                                          "backward and optimizer step, not split by layer"
                                          if timing.mode == "train" else "")}}


def _rest_of_step(forward, offset: float, thread: int, run: int) -> list[dict]:
    """A training run's time after the model's forward (the root span) to the run's end: the loss,
    backward and optimizer step, which no module hook splits by layer, as one labelled span."""
    ends = [span.start + span.seconds for span in forward.spans if span.name == ""]
    if not ends or forward.seconds <= max(ends):
        return []
    start = max(ends)
    return [{"name": REST_OF_STEP, "cat": "step", "ph": "X", "pid": PID, "tid": thread, "ts": (offset + start) * 1e6,
             "dur": (forward.seconds - start) * 1e6, "args": {"run": run, "seconds": forward.seconds - start}}]


def chrome_trace_json(report) -> str:
    """to_chrome_trace as strict JSON text (no NaN), ready to write to a .json file."""
    return json.dumps(to_chrome_trace(report), allow_nan=False)


def _meta(name: str, tid, value: str) -> dict:
    event = {"name": name, "ph": "M", "pid": PID, "args": {"name": value}}
    if tid is not None:
        event["tid"] = tid
    return event


def _layer_args(span, record, run: int) -> dict:
    """A span's args: the layer's counts per call (its totals / its calls: the mean per call when
    its calls differ in shape), and the totals over all its calls under names that say so."""
    args = {"layer": span.name, "run": run, "depth": span.depth}
    if record is not None:
        calls = record.calls
        args.update(type=record.type, macs=_per_call(record.macs, calls), flops=_per_call(record.flops, calls),
                    bytes=_per_call(record.bytes, calls), params=record.params, calls=calls,
                    layer_macs_all_calls=record.macs, layer_flops_all_calls=record.flops,
                    layer_bytes_all_calls=record.bytes)
    return args


def _per_call(total: int, calls: int) -> int | float:
    """``total`` / ``calls``: an int when it divides evenly (every call the same), else the mean."""
    if calls <= 1:
        return total
    whole, rest = divmod(total, calls)
    return whole if rest == 0 else total / calls


def _run_offsets(forwards) -> list[float]:
    """Each timed run's start on the trace: the runs before it, end to end (seconds)."""
    offsets, at = [], 0.0
    for forward in forwards:
        offsets.append(at)
        at += forward.seconds
    return offsets


def _trace_time(at: float, forwards, offsets) -> float:
    """A time.monotonic() stamp on the trace's timeline (seconds): inside the run it fell in, or
    at the end of the run before it when it fell in a gap (the first run's start before any)."""
    place = 0.0
    for forward, offset in zip(forwards, offsets):
        if forward.started > at:
            break
        place = offset + min(at - forward.started, forward.seconds)
    return place


def _counters(samples, forwards, offsets) -> list[dict]:
    """NVML power, SM clock and temperature as counter tracks, one event per reading."""
    events = []
    for reading in samples or ():
        ts = _trace_time(reading.at, forwards, offsets) * 1e6
        for field, name, unit in COUNTERS:
            value = getattr(reading, field, None)
            if value is not None:
                events.append({"name": name, "cat": "nvml", "ph": "C", "pid": PID, "ts": ts, "args": {unit: value}})
    return events
