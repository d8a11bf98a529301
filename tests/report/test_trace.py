"""The per-layer pass as a Chrome trace: valid trace-event JSON, one span per module call per timed
run, nested as the module tree, durations that add up to the measured forward, counts in args."""

import json
import statistics
import time
from collections import Counter
from dataclasses import replace

import pytest
from torch import nn

import torchprof_lab
from fake_pynvml import FakeNvml, sampled_once
from torchprof_lab.errors import ProfilerError
from torchprof_lab.hardware.nvml import PowerSample, PowerSampler
from torchprof_lab.report.trace import chrome_trace_json, to_chrome_trace
from torchprof_lab.timing.result import ForwardSpans, LayerSpan

RUNS = 5  # the per-layer pass runs max(min_runs, 5) times
TOLERANCE_US = 1e-3  # float rounding of ns-clock offsets converted to microseconds


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.act = nn.Linear(8, 8), nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x))


class Net(nn.Module):
    """Nested three deep, and ``shared`` called twice (weight sharing)."""

    def __init__(self):
        super().__init__()
        self.inp, self.body, self.shared, self.out = nn.Linear(4, 8), nn.Sequential(Block(), Block()), \
            nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.shared(self.shared(self.body(self.inp(x)))))


CALLS_PER_RUN = Counter({name: 1 for name, _ in Net().named_modules()}) + Counter({"shared": 1})


@pytest.fixture(scope="module")
def report():
    return torchprof_lab.profile(Net(), (4,), batch_sizes=[2], per_layer=True, hardware=False,
                                 min_time=0.0, min_runs=RUNS, warmup=1, warmup_time=0.0)


def layer_spans(trace):
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "layer"]


def run_spans(trace):
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "run"]


def test_valid_trace_event_json(report):
    trace = report.to_chrome_trace()
    assert json.loads(chrome_trace_json(report)) == trace
    json.dumps(trace, allow_nan=False)  # strict JSON: no NaN or infinity anywhere
    assert set(trace) == {"traceEvents", "displayTimeUnit", "otherData"} and trace["displayTimeUnit"] == "ms"
    assert trace["otherData"]["model"] == "Net" and trace["otherData"]["timed_runs"] == RUNS
    for event in trace["traceEvents"]:
        assert isinstance(event["name"], str) and event["ph"] in ("X", "M") and event["pid"] == 1
        if event["ph"] == "X":
            assert isinstance(event["ts"], float) and isinstance(event["dur"], float) and event["dur"] > 0
            assert event["ts"] >= 0 and event["tid"] == 1 and isinstance(event["args"], dict)
    meta = {(e["name"], e.get("tid")): e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert meta == {("process_name", None): "Net per-layer pass (cpu, fp32, inference)",
                    ("thread_name", 1): "batch 2"}


def test_one_span_per_module_call_per_timed_run(report):
    trace = to_chrome_trace(report)
    assert len(run_spans(trace)) == RUNS == len(report.timing.layer_forwards)
    per_run = Counter((e["args"]["run"], e["args"]["layer"]) for e in layer_spans(trace))
    for run in range(1, RUNS + 1):
        assert {name: per_run[run, name] for name in CALLS_PER_RUN} == dict(CALLS_PER_RUN)
    assert len(layer_spans(trace)) == RUNS * sum(CALLS_PER_RUN.values()) == RUNS * 12
    names = Counter(e["name"] for e in layer_spans(trace))
    assert names["Net"] == RUNS and names["shared"] == 2 * RUNS and "" not in names  # the root is its class


def test_spans_nest_as_the_module_tree_and_runs_lie_end_to_end(report):
    trace = to_chrome_trace(report)
    runs = run_spans(trace)
    end = 0.0
    for run in runs:  # each timed run starts where the one before it ended
        assert run["ts"] == pytest.approx(end, abs=TOLERANCE_US)
        end = run["ts"] + run["dur"]
    for number, run in enumerate(runs, start=1):
        spans = [e for e in layer_spans(trace) if e["args"]["run"] == number]
        for span in spans:
            name = span["args"]["layer"]
            if name == "":
                parents = [run]
                assert span["args"]["depth"] == 0
            else:
                parent_name = name.rpartition(".")[0]
                parents = [p for p in spans if p["args"]["layer"] == parent_name
                           and p["ts"] - TOLERANCE_US <= span["ts"]
                           and span["ts"] + span["dur"] <= p["ts"] + p["dur"] + TOLERANCE_US]
                assert len(parents) == 1, name  # inside exactly one call of the parent the module tree names
                assert span["args"]["depth"] == parents[0]["args"]["depth"] + 1
            assert parents[0]["ts"] - TOLERANCE_US <= span["ts"]
            assert span["ts"] + span["dur"] <= parents[0]["ts"] + parents[0]["dur"] + TOLERANCE_US
        for parent in spans:  # the direct children's durations add up to at most their parent's
            depth = parent["args"]["depth"]
            children = [c for c in spans if c["args"]["depth"] == depth + 1 and parent["ts"] - TOLERANCE_US
                        <= c["ts"] <= parent["ts"] + parent["dur"] + TOLERANCE_US]
            assert sum(c["dur"] for c in children) <= parent["dur"] + TOLERANCE_US
        top = [s["args"]["layer"] for s in spans if s["args"]["depth"] == 1]
        assert top == ["inp", "body", "shared", "shared", "out"]  # in call order


def test_root_span_is_the_forward_the_pass_measured(report):
    forwards = report.timing.layer_forwards
    roots = [next(s for s in f.spans if s.name == "") for f in forwards]
    # the per-layer medians are made of these very spans, so they agree exactly
    assert statistics.median(r.seconds for r in roots) == report.model_record.latency
    assert statistics.median(f.seconds for f in forwards) == report.timing.layer_latency_total
    shared = [sum(s.seconds for s in f.spans if s.name == "shared") for f in forwards]
    assert statistics.median(shared) == report.layer("shared").latency
    trace = to_chrome_trace(report)
    trace_roots = [e for e in layer_spans(trace) if e["args"]["layer"] == ""]
    for forward, root, event, run in zip(forwards, roots, trace_roots, run_spans(trace)):
        assert event["dur"] == pytest.approx(root.seconds * 1e6, rel=1e-12)
        assert run["dur"] == pytest.approx(forward.seconds * 1e6, rel=1e-12)
        assert 0 <= root.start and root.start + root.seconds <= forward.seconds  # the run holds its forward


def test_args_carry_the_counted_layer_per_call(report):
    for event in layer_spans(to_chrome_trace(report)):
        name = event["args"]["layer"]
        record = report.model_record if name == "" else report.layer(name)
        assert {k: event["args"][k] for k in ("type", "params", "calls", "layer_macs_all_calls",
                                              "layer_flops_all_calls", "layer_bytes_all_calls")} == \
            {"type": record.type, "params": record.params, "calls": record.calls, "layer_macs_all_calls": record.macs,
             "layer_flops_all_calls": record.flops, "layer_bytes_all_calls": record.bytes}
        if record.calls == 1:
            assert (event["args"]["macs"], event["args"]["flops"], event["args"]["bytes"]) == \
                (record.macs, record.flops, record.bytes)
    inp = next(e for e in layer_spans(to_chrome_trace(report)) if e["args"]["layer"] == "inp")
    assert inp["args"]["macs"] == 2 * 4 * 8 and inp["args"]["params"] == 4 * 8 + 8 and inp["args"]["type"] == "Linear"
    # shared: Linear(8, 8) called twice on a batch of 2; each span is one call, the totals are both
    shared = [e["args"] for e in layer_spans(to_chrome_trace(report)) if e["args"]["layer"] == "shared"]
    assert len(shared) == 2 * RUNS
    for args in shared:
        assert args["calls"] == 2
        assert args["macs"] == 2 * 8 * 8 and args["layer_macs_all_calls"] == 2 * (2 * 8 * 8)
        assert args["flops"] == 2 * 8 * 8 * 2 + 2 * 8 and args["layer_flops_all_calls"] == 2 * args["flops"]
        assert args["bytes"] == 4 * (2 * 8 + 8 * 8 + 8 + 2 * 8) and args["layer_bytes_all_calls"] == 2 * args["bytes"]
    top = [e["args"] for e in layer_spans(to_chrome_trace(report)) if e["args"]["run"] == 1 and e["args"]["depth"] == 1]
    assert sum(a["macs"] for a in top) == report.model_record.macs  # one run's top spans count each call once


def test_no_per_layer_timing_is_a_clear_error(report):
    counted = torchprof_lab.count(Net(), (4,))
    for untimed in (counted, replace(report, timing=replace(report.timing, layer_forwards=()))):
        with pytest.raises(ProfilerError, match=r"per_layer=True \(--per-layer\)"):
            untimed.to_chrome_trace()


def test_nvml_samples_become_counter_tracks(report):
    span = LayerSpan("", 0.0, 0.001, 0)
    forwards = (ForwardSpans(2, 0.002, 100.0, (span,)), ForwardSpans(2, 0.003, 100.010, (span,)))
    power = (PowerSample(99.0, 250.0, 1410.0, 61.0),  # before the first run: at its start
             PowerSample(100.001, 300.0, 1395.0, None),  # 1 ms into run 1
             PowerSample(100.005, None, 1380.0, 62.0),  # in the gap: at the end of run 1
             PowerSample(100.011, 280.0, None, None),  # 1 ms into run 2
             PowerSample(200.0, 260.0, 1410.0, 63.0))  # after the last run: at its end
    timed = replace(report, timing=replace(report.timing, layer_forwards=forwards, layer_power=power))
    counters = [e for e in to_chrome_trace(timed)["traceEvents"] if e["ph"] == "C"]
    got = [(e["name"], round(e["ts"], 6), e["args"]) for e in counters]
    assert got == [("GPU power", 0.0, {"W": 250.0}), ("SM clock", 0.0, {"MHz": 1410.0}),
                   ("GPU temperature", 0.0, {"C": 61.0}),
                   ("GPU power", 1000.0, {"W": 300.0}), ("SM clock", 1000.0, {"MHz": 1395.0}),
                   ("SM clock", 2000.0, {"MHz": 1380.0}), ("GPU temperature", 2000.0, {"C": 62.0}),
                   ("GPU power", 3000.0, {"W": 280.0}),
                   ("GPU power", 5000.0, {"W": 260.0}), ("SM clock", 5000.0, {"MHz": 1410.0}),
                   ("GPU temperature", 5000.0, {"C": 63.0})]
    assert all(e["pid"] == 1 and e["cat"] == "nvml" for e in counters)


def test_power_sampler_stamps_each_reading():
    before = time.monotonic()
    with PowerSampler(FakeNvml(), ("handle", 0), interval=0.01) as sampler:
        sampled_once(sampler)  # the thread's reading; the exit takes one more
    readings = sampler.timeline()
    assert len(readings) == sampler.summary().samples >= 2
    stamps = [r.at for r in readings]
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= time.monotonic()
    assert {r.sm_clock_mhz for r in readings} == {1410.0} and {r.temperature_c for r in readings} == {61.0}
    assert {r.watts for r in readings} <= {250.0, 300.0, 280.0}
    with PowerSampler(FakeNvml(unsupported={"power", "clock"}), ("handle", 0), interval=0.01) as missing:
        pass
    assert {(r.watts, r.sm_clock_mhz, r.temperature_c) for r in missing.timeline()} == {(None, None, 61.0)}


def test_a_training_run_labels_the_time_after_the_forward(report):
    assert not [e for e in to_chrome_trace(report)["traceEvents"] if e.get("cat") == "step"]  # inference: none
    trained = torchprof_lab.profile(Net(), (4,), batch_sizes=[2], per_layer=True, hardware=False, train=True,
                                    min_time=0.0, min_runs=RUNS, warmup=1, warmup_time=0.0)
    trace = to_chrome_trace(trained)
    assert "loss, backward and optimizer step" in trace["otherData"]["timeline"]
    rest = [e for e in trace["traceEvents"] if e.get("cat") == "step"]
    assert len(rest) == RUNS == len(run_spans(trace))
    for number, (run, step) in enumerate(zip(run_spans(trace), rest), start=1):
        root = next(e for e in layer_spans(trace) if e["args"]["run"] == number and e["args"]["layer"] == "")
        assert step["name"] == "loss, backward and optimizer step (not split by layer)" and step["ph"] == "X"
        assert step["args"]["run"] == number and step["tid"] == run["tid"] and step["dur"] > 0
        assert step["ts"] == pytest.approx(root["ts"] + root["dur"], abs=TOLERANCE_US)  # from the forward's end
        assert step["ts"] + step["dur"] == pytest.approx(run["ts"] + run["dur"], abs=TOLERANCE_US)  # to the run's
