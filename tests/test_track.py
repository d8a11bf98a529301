"""track() around a hand-written training loop: the first step counted once (by hand and as
count() counts it), samples, tokens and steps as the loop made them, every hook gone afterwards,
also when the loop raises; the figures' arithmetic; the report's renderings."""

import dataclasses
import importlib
import json

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

import torchprof_lab
from torchprof_lab.errors import ProfilerError
from torchprof_lab.tracking.result import TrackFigures, TrackReport
from torchprof_lab.tracking.tracker import Tracker

from fake_pynvml import FakeNvml

BATCH, IN, OUT = 5, 8, 4
HAND = 2 * BATCH * IN * OUT + BATCH * OUT  # Linear forward: 2*B*in*out (multiply-adds) + B*out (bias)


def _no_hooks(model, optimizer=None) -> bool:
    """No hook of ours anywhere: the model's, the optimizer's, the global module hooks, no dispatch mode."""
    from torch.nn.modules import module as module_lib

    return (not model._forward_pre_hooks and not model._forward_pre_hooks_with_kwargs
            and not module_lib._global_forward_pre_hooks and not module_lib._global_forward_hooks
            and (optimizer is None or not optimizer._optimizer_step_post_hooks)
            and _get_current_dispatch_mode() is None)


def _train(model, optimizer, batches):
    for x in batches:
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def _tracked_linear(steps: int):
    """(model, optimizer, report) of ``steps`` SGD steps of a Linear, tracked."""
    model = nn.Linear(IN, OUT)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with torchprof_lab.track(model, optimizer) as tracker:
        _train(model, optimizer, [torch.randn(BATCH, IN) for _ in range(steps)])
    return model, optimizer, tracker.report()


def test_first_step_flops_equal_the_hand_formula_and_count_and_every_step_is_timed():
    model, optimizer, report = _tracked_linear(6)
    # forward HAND; backward: the weight's gradient (a matmul, 2*B*in*out) and the bias's (B*out);
    # the input needs no gradient, so none is computed for it
    assert (report.forward_flops, report.backward_flops, report.flops_per_step) == (HAND, HAND, 2 * HAND)
    assert report.flops_per_step == torchprof_lab.count(model, (IN,), BATCH, backward=True).total_flops
    assert report.other_flops > 0  # the loss and the SGD update ran outside the model
    assert report.steps == 6 and report.samples_per_step == BATCH and report.uncounted_ops == {}
    summary = report.summary
    assert (summary.first_step, summary.last_step, summary.timed_steps, summary.latency.n) == (1, 6, 5, 5)
    seconds = sum(summary.latency.samples)
    assert summary.samples_per_s == pytest.approx(5 * BATCH / seconds)
    assert summary.flops_per_s == pytest.approx(5 * 2 * HAND / seconds)
    if report.peak_flops is not None:  # the CPU's ISA peak, where its clock can be read
        assert summary.mfu == pytest.approx(summary.flops_per_s / report.peak_flops)
    params = (IN * OUT + OUT) * 4
    # weights, their gradients and the batch were live at once in the counted step
    assert summary.peak_memory_bytes >= 2 * params + BATCH * IN * 4
    assert summary.tokens_per_s is None and summary.joules_per_step is None
    assert any("first step is counted" in n for n in report.notes)
    assert _no_hooks(model, optimizer)


def test_tracking_changes_no_number_of_the_training():
    def run(tracked: bool):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(IN, 16), nn.ReLU(), nn.Linear(16, OUT))
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        batches = [torch.randn(BATCH, IN) for _ in range(3)]
        if tracked:
            with torchprof_lab.track(model, optimizer):
                _train(model, optimizer, batches)
        else:
            _train(model, optimizer, batches)
        return [p.detach().clone() for p in model.parameters()], optimizer

    plain, _ = run(False)
    tracked, optimizer = run(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, tracked))
    assert not optimizer._optimizer_step_post_hooks


def test_step_marks_steps_without_an_optimizer_and_tokens_are_inferred_from_token_ids():
    model = nn.Sequential(nn.Embedding(32, 8), nn.Linear(8, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with torchprof_lab.track(model) as tracker:
        for length in (6, 6, 6, 3):  # the last batch is half as long
            ids = torch.randint(0, 32, (2, length))
            model(ids).float().pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
            tracker.step()
    report = tracker.report()
    assert report.steps == 4 and report.samples_per_step == 2 and report.tokens_per_sample == 6
    assert "inferred" in report.tokens_source
    summary = report.summary
    seconds = sum(summary.latency.samples)
    assert summary.samples_per_s == pytest.approx(3 * 2 / seconds)
    assert summary.tokens_per_s == pytest.approx((2 * 6 + 2 * 6 + 2 * 3) / seconds)
    # the short step does half the counted step's work: FLOPs scale with its tokens
    assert summary.flops_per_s == pytest.approx(report.flops_per_step * 2.5 / seconds)
    assert _no_hooks(model)


def test_given_tokens_per_sample_and_batch_size():
    model = nn.Linear(IN, OUT)
    with torchprof_lab.track(model, tokens_per_sample=128, batch_size=3) as tracker:
        for _ in range(3):
            model(torch.randn(BATCH, IN)).sum().backward()
            tracker.step()
    report = tracker.report()
    assert report.tokens_per_sample == 128 and report.tokens_source == "tokens_per_sample=128 (given)"
    assert report.samples_per_step == 3 and report.samples_source == "batch_size=3 (given)"
    assert report.summary.tokens_per_s == pytest.approx(128 * report.summary.samples_per_s)


def test_the_counted_step_is_the_first_that_runs_the_model():
    model = nn.Linear(IN, OUT)
    with torchprof_lab.track(model) as tracker:
        for _ in range(4):
            tracker.step()  # at the top of the loop: the first step runs nothing
            model(torch.randn(BATCH, IN)).sum().backward()
    report = tracker.report()  # the work after the last step() is in no step
    assert (report.steps, report.counted_step, report.summary.timed_steps) == (4, 2, 2)
    assert report.flops_per_step == 2 * HAND
    assert any(n.startswith("step 2, the first that ran the model, is counted") for n in report.notes)


def test_hooks_removed_when_the_loop_raises_in_the_counted_step():
    model = nn.Linear(IN, OUT)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="stop here"):
        with torchprof_lab.track(model, optimizer) as tracker:
            model(torch.randn(BATCH, IN)).sum().backward()  # the counter is running now
            raise RuntimeError("stop here")
    assert _no_hooks(model, optimizer)
    report = tracker.report()
    assert report.steps == 0 and report.flops_per_step is None
    assert any("raised RuntimeError in step 1" in n for n in report.notes)
    assert tracker.report() is report  # final once closed


def test_windows_and_energy_per_step_from_the_nvml_counter():
    model = nn.Linear(IN, OUT)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = Tracker(model, optimizer).open()
    tracker._nvml, tracker._handle = FakeNvml(), ("handle", 0)  # the fake adds 5 J at every reading
    tracker.begin_step()
    windows = []
    for x in [torch.randn(BATCH, IN) for _ in range(5)]:
        model(x).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        if tracker.steps % 2 == 0:
            windows.append(tracker.window())
    report = tracker.close()
    assert [(w.first_step, w.last_step, w.timed_steps) for w in windows] == [(1, 2, 1), (3, 4, 2)]
    assert report.windows == tuple(windows) and report.summary.timed_steps == 4
    assert windows[1].latency.samples == report.summary.latency.samples[1:3]
    assert report.summary.joules_per_step == pytest.approx(5.0)
    assert report.summary.mean_power_w == pytest.approx(5.0 * 4 / sum(report.summary.latency.samples))
    metrics = windows[1].metrics()
    assert metrics["torchprof/energy_j_per_step"] == pytest.approx(5.0)
    assert metrics["torchprof/flops_per_step"] == 2 * HAND
    assert metrics["torchprof/step_ms"] == pytest.approx(windows[1].latency.mean * 1e3)
    assert _no_hooks(model, optimizer)


def test_cuda_bookkeeping_with_stand_in_events_and_memory_readings(monkeypatch):
    """The GPU path's arithmetic on a CPU machine: per-step peak memory readings (the largest in a
    window), step times from event pairs read without waiting every RESOLVE_EVERY steps."""
    class Event:
        def __init__(self, t):
            self.t = t

        def query(self):
            return True

        def synchronize(self):
            pass

    class Clock:
        name, now = "stand-in events", 0

        def start(self):
            self.now += 1
            return Event(self.now)

        def between(self, a, b):
            return (b.t - a.t) / 1e3

    readings = iter([100, 300, 200, 250, 50, 70])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: next(readings))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(importlib.import_module("torchprof_lab.tracking.tracker"), "RESOLVE_EVERY", 2)
    model = nn.Linear(IN, OUT)
    tracker = Tracker(model)
    tracker._cuda, tracker._clock, tracker._peak = True, Clock(), (None, "stand-in")
    tracker.open()
    tracker.begin_step()
    windows = []
    for _ in range(6):
        model(torch.randn(BATCH, IN)).sum().backward()
        tracker.step()
        if tracker.steps == 2:
            assert all(s.begin is None and s.seconds == 1e-3 for s in tracker._done)  # read, marks dropped
        if tracker.steps % 3 == 0:
            windows.append(tracker.window())
    report = tracker.close()
    assert [w.peak_memory_bytes for w in windows] == [300, 250]
    assert report.summary.peak_memory_bytes == 300
    assert report.summary.latency.samples == (1e-3,) * 5  # each step: one tick of the stand-in clock
    assert report.summary.samples_per_s == pytest.approx(5 * BATCH / 5e-3)
    assert "max_memory_allocated per step" in report.peak_memory_source


def test_report_renders_and_is_a_frozen_value():
    _, _, report = _tracked_linear(3)
    for cls in (TrackReport, TrackFigures):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    text = str(report)
    assert text.startswith("Training loop: Linear on cpu, fp32, 3 steps")
    assert f"FLOPs per step (counted in step 1): {2 * HAND} = forward {HAND} + backward {HAND}" in text
    assert "Tokens/s" not in text and "J/step" not in text  # columns no row has
    data = json.loads(report.to_json())
    assert data["flops_per_step"] == 2 * HAND and data["summary"]["timed_steps"] == 2
    assert torchprof_lab.report.render.render(report, "markdown").startswith("### Training loop")


def test_bad_arguments_are_one_line_errors():
    model = nn.Linear(IN, OUT)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        with torchprof_lab.track("resnet18"):
            pass
    with pytest.raises(ValueError, match="tokens_per_sample must be a positive integer"):
        with torchprof_lab.track(model, tokens_per_sample=0):
            pass
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ProfilerError, match="optimizer's step"):
        with torchprof_lab.track(model, optimizer) as tracker:
            tracker.step()
    assert _no_hooks(model, optimizer)


def test_step_times_that_drift_are_said_in_the_notes():
    """The timing rules' warnings reach a tracked loop: steps that slow down halfway drift."""
    import time

    model = nn.Linear(4, 2)
    with torchprof_lab.track(model) as tracker:
        for step in range(13):  # 12 timed steps: drift needs 10
            model(torch.randn(2, 4)).sum().backward()
            time.sleep(0.002 if step < 7 else 0.012)  # the second half's steps are much slower
            tracker.step()
    notes = tracker.report().notes
    drifted = [n for n in notes if n.startswith("step times: drifted: the second half of the run was +")]
    assert len(drifted) == 1 and "--warmup-time" not in drifted[0]
    assert not any("p99" in n for n in notes)  # the track table has no p99 column
