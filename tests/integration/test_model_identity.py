"""The user's model is left exactly as it was, by identity as well as by value (issue 10).

Each test is a way a forward changes its module other than by writing into an existing
tensor: reassigning a buffer or a tensor attribute, registering a buffer, materialising a lazy
layer, caching a tensor on meta, drawing random numbers; and profiling one model, or two,
from two threads.
"""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn
from torch.nn.parameter import is_lazy

import torchprof_lab
from torchprof_lab import ForwardError
from model_fingerprint import assert_untouched, fingerprint, train_step

TINY = dict(min_time=0.0, min_runs=1, warmup=0, warmup_time=0.0)


class Rotary(nn.Module):
    """A rotary-embedding cache rebuilt when a longer sequence arrives: one plain tensor
    attribute, one non-persistent buffer re-registered."""

    def __init__(self, dim: int = 8, cached: int = 2):
        super().__init__()
        self.dim = dim
        self.cos_cached = torch.ones(cached, dim)
        self.register_buffer("sin_cached", torch.zeros(cached, dim), persistent=False)

    def forward(self, x):  # x: (batch, seq, dim)
        seq = x.shape[1]
        if self.cos_cached.shape[0] < seq:
            t = torch.arange(seq, device=x.device, dtype=x.dtype)[:, None] / self.dim
            self.cos_cached = t.cos()
            self.register_buffer("sin_cached", t.sin().expand(seq, self.dim).contiguous(), persistent=False)
        return x * self.cos_cached[:seq] + x * self.sin_cached[:seq]


class RotaryModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.rotary = Rotary()

    def forward(self, x):
        return self.rotary(self.proj(x))


class StepCounter(nn.Module):
    """A step counter and an EMA buffer reassigned (not written in place) in forward."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("ema", torch.zeros(4))

    def forward(self, x):
        self.steps = self.steps + 1
        self.ema = 0.9 * self.ema + 0.1 * x.detach().mean(0)
        return self.lin(x)


class RegistersInForward(nn.Module):
    """Registers a buffer, a parameter, a submodule and an attribute the first time it runs."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        if not hasattr(self, "seen"):
            self.register_buffer("seen", x.detach().mean(0))
            self.register_parameter("extra", nn.Parameter(torch.ones(4, device=x.device)))
            self.added = nn.ReLU()
            self.note = "ran"
        return self.added(self.lin(x)) * self.extra


class MetaCache(nn.Module):
    """Caches anchors the first time it runs, on the input's device (as torchvision's
    detectors do): a meta count must not leave meta anchors behind."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.anchors = None

    def forward(self, x):
        if self.anchors is None:
            self.anchors = torch.linspace(0, 1, 4, device=x.device, dtype=x.dtype)
        return self.lin(x) + self.anchors


def rotary_input():
    return torch.randn(2, 6, 8)


# ---------------------------------------------------------------------- each bullet of issue 10
def test_rotary_cache_rebuilt_under_benchmark_leaves_no_inference_tensor():
    model = RotaryModel()
    cos, sin = model.rotary.cos_cached, model.rotary.sin_cached
    before = fingerprint(model)
    torchprof_lab.benchmark(model, (6, 8), [2], **TINY)  # runs under torch.inference_mode()
    assert model.rotary.cos_cached is cos and model.rotary.sin_cached is sin
    assert_untouched(before, model)
    train_step(model, rotary_input())  # "Inference tensors cannot be saved for backward" before the fix


@pytest.mark.parametrize("options", [{}, {"device": "meta"}, {"backward": True}, {"train": True}])
def test_rotary_cache_rebuilt_under_count(options):
    model, x = RotaryModel(), rotary_input()
    before = fingerprint(model)
    torchprof_lab.count(model, inputs=x, **options)
    assert_untouched(before, model)
    train_step(model, rotary_input())


@pytest.mark.parametrize("entry", ["count", "count_meta", "benchmark", "profile"])
def test_step_counter_and_ema_reassigned_in_forward_are_put_back(entry):
    model = StepCounter()
    steps, ema = model.steps, model.ema
    x = torch.randn(3, 4)
    before = fingerprint(model)
    if entry == "count":
        torchprof_lab.count(model, inputs=x)
    elif entry == "count_meta":
        torchprof_lab.count(model, inputs=x, device="meta")
    elif entry == "benchmark":
        torchprof_lab.benchmark(model, inputs=x, **TINY)
    else:
        torchprof_lab.profile(model, inputs=x, hardware=False, **TINY)
    assert model.steps is steps and model.steps.item() == 0 and model.ema is ema
    assert_untouched(before, model)


@pytest.mark.parametrize("options", [{}, {"device": "meta"}, {"backward": True}])
def test_members_registered_during_forward_are_removed(options):
    model, x = RegistersInForward(), torch.randn(3, 4)
    before = fingerprint(model)
    keys = list(model.state_dict())
    torchprof_lab.count(model, inputs=x, **options)
    assert not hasattr(model, "seen") and not hasattr(model, "extra") and not hasattr(model, "added")
    assert not hasattr(model, "note") and list(model.state_dict()) == keys
    assert_untouched(before, model)


def test_members_registered_during_benchmark_are_removed():
    model = RegistersInForward()
    before = fingerprint(model)
    torchprof_lab.benchmark(model, (4,), [2], **TINY)
    assert_untouched(before, model)


def lazy_model():
    return nn.Sequential(nn.Linear(3, 5), nn.LazyLinear(4), nn.ReLU(), nn.LazyBatchNorm1d())


@pytest.mark.parametrize("options", [{}, {"device": "meta"}, {"backward": True}, {"device": "meta", "backward": True},
                                     {"dtype": "bf16", "device": "meta"}])
def test_lazy_modules_stay_lazy_after_count(options):
    model, x = lazy_model(), torch.randn(2, 3)
    before = fingerprint(model)
    r = torchprof_lab.count(model, inputs=x, **options)
    assert type(model[1]) is nn.LazyLinear and is_lazy(model[1].weight) and is_lazy(model[3].running_mean)
    assert_untouched(before, model)
    # the lazy layer was counted as the layer it becomes: 2 x 5 x 4 MACs, 24 parameters
    assert r.layer("1").macs == 2 * 5 * 4 and r.layer("1").params == 24
    assert r.macs == 2 * 3 * 5 + 2 * 5 * 4 + r.layer("3").macs
    if options.get("backward"):
        assert r.layer("1").backward_macs > 0


@pytest.mark.parametrize("train", [False, True])
def test_lazy_modules_stay_lazy_after_benchmark(train):
    model = lazy_model()
    before = fingerprint(model)
    b = torchprof_lab.benchmark(model, (3,), [2], train=train, **TINY)
    assert b.rows[0].ok
    assert type(model[1]) is nn.LazyLinear and is_lazy(model[1].weight)
    assert_untouched(before, model)


def test_lazy_model_profile_counts_the_materialised_layers():
    model, x = lazy_model(), torch.randn(2, 3)
    before = fingerprint(model)
    r = torchprof_lab.profile(model, inputs=x, hardware=False, **TINY)
    assert r.layer("1").macs == 2 * 5 * 4 and r.timing.rows[0].flops_per_batch == r.flops
    assert_untouched(before, model)


def test_tensor_cached_during_meta_count_is_not_left_on_meta():
    model, x = MetaCache(), torch.randn(3, 4)
    before = fingerprint(model)
    r = torchprof_lab.count(model, inputs=x, device="meta")
    assert r.macs == 3 * 4 * 4
    assert model.anchors is None
    assert_untouched(before, model)
    model(torch.randn(3, 4))  # runs: before the fix, "anchors" was a meta tensor


def test_meta_count_of_a_torchvision_detector_leaves_no_meta_anchors():
    """Faster R-CNN's anchor generator moves its cell anchors to the input's device in forward
    (``self.cell_anchors = [a.to(device) ...]``): after a meta count they were meta tensors and
    the model no longer ran. The meta count itself stops at data-dependent ops (nonzero in the
    proposal filter), which is a one-line ForwardError; either way the model must be as it was."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None).eval()
    x = [torch.rand(3, 64, 64)]
    anchors = model.rpn.anchor_generator.cell_anchors
    before = fingerprint(model)
    try:
        torchprof_lab.count(model, inputs=(x,), device="meta")
    except ForwardError as exc:
        assert "\n" not in str(exc)
    assert model.rpn.anchor_generator.cell_anchors is anchors
    assert all(a.device.type == "cpu" for a in anchors)
    assert_untouched(before, model)
    with torch.no_grad():
        model(x)


class Explodes(nn.Module):
    """Changes everything it can, then raises."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.lin = nn.LazyLinear(4)
        self.register_buffer("steps", torch.zeros(()))
        self.cache = torch.zeros(4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = self.drop(self.lin(self.bn(x)))
        self.steps = self.steps + 1
        self.cache = x.detach().mean(0)
        self.register_buffer("late", torch.ones(1))
        self.new_layer = nn.Linear(4, 4)
        raise RuntimeError("boom")


@pytest.mark.parametrize("entry", ["count", "count_backward", "count_meta", "benchmark", "benchmark_train"])
def test_restored_when_forward_raises(entry):
    model = Explodes().train()
    model.lin = nn.Linear(4, 4)  # materialised, so the model itself is run (no lazy copy)
    x = torch.randn(8, 4)
    before = fingerprint(model)
    with pytest.raises((ForwardError, RuntimeError), match="boom"):
        if entry.startswith("count"):
            torchprof_lab.count(model, inputs=x, backward=entry == "count_backward",
                                device="meta" if entry == "count_meta" else None, train=True)
        else:
            torchprof_lab.benchmark(model, inputs=x, train=entry == "benchmark_train", **TINY)
    assert_untouched(before, model)


def test_lazy_model_restored_when_forward_raises():
    model, x = Explodes().train(), torch.randn(8, 4)
    before = fingerprint(model)
    with pytest.raises(ForwardError, match="boom"):
        torchprof_lab.count(model, inputs=x, train=True)
    assert_untouched(before, model)
    assert is_lazy(model.lin.weight)


# ---------------------------------------------------------------------- RNG
def dropout_model():
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))


@pytest.mark.parametrize("entry", ["count_train", "count_backward", "benchmark", "benchmark_train", "profile_train"])
def test_global_rng_state_unchanged(entry):
    model = dropout_model()
    x = torch.randn(5, 4)
    torch.manual_seed(1234)
    expected = torch.rand(3)  # what a seeded program draws next...
    torch.manual_seed(1234)
    if entry == "count_train":
        torchprof_lab.count(model, inputs=x, train=True)
    elif entry == "count_backward":
        torchprof_lab.count(model, inputs=x, backward=True)
    elif entry == "benchmark":
        torchprof_lab.benchmark(model, (4,), [3], **TINY)  # draws its random batch
    elif entry == "benchmark_train":
        torchprof_lab.benchmark(model, (4,), [3], train=True, **TINY)
    else:
        torchprof_lab.profile(model, (4,), batch_sizes=[3], train=True, hardware=False, **TINY)
    assert torch.equal(torch.rand(3), expected)  # ...is the same with profiling in between


def test_global_rng_state_unchanged_by_count_with_input_shape():
    model = nn.Linear(4, 4)  # built first: its initialisation draws from the RNG too
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    torchprof_lab.count(model, (4,))
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------- no silent zeros
class NoGradOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x).argmax(-1)  # integer output: nothing to backpropagate


@pytest.mark.parametrize("model", [NoGradOutput(), nn.Linear(4, 4).requires_grad_(False)],
                         ids=["integer-output", "frozen"])
@pytest.mark.parametrize("device", [None, "meta"])
def test_backward_without_a_differentiable_output_is_an_error(model, device):
    x = torch.randn(2, 4)
    before = fingerprint(model)
    with pytest.raises(ValueError, match="no floating-point tensor that requires grad") as info:
        torchprof_lab.count(model, inputs=x, backward=True, device=device)
    assert "\n" not in str(info.value)
    assert_untouched(before, model)


def test_backward_of_a_frozen_model_reaches_an_input_that_requires_grad():
    model = nn.Linear(4, 3).requires_grad_(False)
    x = torch.randn(2, 4, requires_grad=True)
    r = torchprof_lab.count(model, inputs=x, backward=True)
    assert r.backward_macs == 2 * 4 * 3  # grad of the input only
    assert x.grad is None


# ---------------------------------------------------------------------- threads
def layer_numbers(report):
    return [(layer.name, layer.macs, layer.flops, layer.bytes, layer.backward_flops, layer.calls)
            for layer in report.layers]


def mixed_mode_model():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
                          nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8)), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 4))
    model.train()
    model[4].eval()  # mixed modes must come back mixed
    return model


def run_threads(jobs: list, repeats: int) -> list:
    """Run each job ``repeats`` times in its own thread, all at once; return each job's results."""
    results = [[] for _ in jobs]
    errors = []
    start = threading.Barrier(len(jobs))

    def worker(i, job):
        try:
            start.wait()
            for _ in range(repeats):
                results[i].append(job())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a thread still runs after 60 s"
    return results


def test_two_threads_counting_the_same_model():
    model = mixed_mode_model()
    x = torch.randn(2, 3, 12, 12)
    before = fingerprint(model)
    eval_ref = layer_numbers(torchprof_lab.count(model, inputs=x))
    train_ref = layer_numbers(torchprof_lab.count(model, inputs=x, backward=True))
    meta_ref = layer_numbers(torchprof_lab.count(model, inputs=x, device="meta", backward=True))
    evals, trains, metas = run_threads([
        lambda: layer_numbers(torchprof_lab.count(model, inputs=x)),
        lambda: layer_numbers(torchprof_lab.count(model, inputs=x, backward=True)),
        lambda: layer_numbers(torchprof_lab.count(model, inputs=x, device="meta", backward=True)),
    ], repeats=6)
    assert all(r == eval_ref for r in evals)
    assert all(r == train_ref for r in trains)
    assert all(r == meta_ref for r in metas)
    assert_untouched(before, model)


def test_two_threads_benchmarking_and_counting_the_same_model():
    model = mixed_mode_model()
    x = torch.randn(2, 3, 12, 12)
    before = fingerprint(model)
    train_ref = layer_numbers(torchprof_lab.count(model, inputs=x, backward=True))
    _, trains = run_threads([
        lambda: torchprof_lab.profile(model, inputs=x, hardware=False, **TINY),
        lambda: layer_numbers(torchprof_lab.count(model, inputs=x, backward=True)),
    ], repeats=6)
    assert all(r == train_ref for r in trains)
    assert_untouched(before, model)


def test_two_threads_counting_two_models():
    a, b = mixed_mode_model(), nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
    xa, xb = torch.randn(2, 3, 12, 12), torch.randn(4, 16)
    before_a, before_b = fingerprint(a), fingerprint(b)
    ref_a = layer_numbers(torchprof_lab.count(a, inputs=xa, backward=True))
    ref_b = layer_numbers(torchprof_lab.count(b, inputs=xb, backward=True))
    got_a, got_b = run_threads([
        lambda: layer_numbers(torchprof_lab.count(a, inputs=xa, backward=True)),
        lambda: layer_numbers(torchprof_lab.count(b, inputs=xb, backward=True)),
    ], repeats=8)
    assert all(r == ref_a for r in got_a)
    assert all(r == ref_b for r in got_b)
    assert_untouched(before_a, a)
    assert_untouched(before_b, b)


def test_two_threads_counting_two_models_that_share_a_layer():
    """Global module hooks see every thread's modules: a layer in both models is the case
    where one pass could charge the other's work to itself."""
    shared = nn.Linear(16, 16)
    a = nn.Sequential(nn.Linear(16, 16), shared)
    b = nn.Sequential(shared, nn.ReLU(), nn.Linear(16, 8))
    x = torch.randn(4, 16)
    ref_a = layer_numbers(torchprof_lab.count(a, inputs=x))
    ref_b = layer_numbers(torchprof_lab.count(b, inputs=x))
    got_a, got_b = run_threads([lambda: layer_numbers(torchprof_lab.count(a, inputs=x)),
                                lambda: layer_numbers(torchprof_lab.count(b, inputs=x))], repeats=10)
    assert all(r == ref_a for r in got_a)
    assert all(r == ref_b for r in got_b)


def test_counting_mode_is_per_thread():
    """The dispatch mode is thread-local: ops another thread runs meanwhile are not counted."""
    model = nn.Linear(64, 64)
    x = torch.randn(8, 64)
    ref = torchprof_lab.count(model, inputs=x).flops
    stop = threading.Event()

    def busy():
        y = torch.randn(64, 64)
        while not stop.is_set():
            y @ y

    t = threading.Thread(target=busy)
    t.start()
    try:
        assert all(torchprof_lab.count(model, inputs=x).flops == ref for _ in range(20))
    finally:
        stop.set()
        t.join()


# ---------------------------------------------------------------------- the context manager itself
def test_model_restored_yields_the_model_and_restores_on_exit():
    from torchprof_lab.model_state import model_restored

    model = StepCounter().train()
    before = fingerprint(model)
    with model_restored(model, train=False) as run:
        assert run.module is model and [m for _, m in run.modules] == list(model.modules())
        assert not model.training
        model(torch.randn(2, 4))
        model.lin = nn.Identity()
    assert_untouched(before, model)


def test_model_restored_runs_a_lazy_model_on_a_copy_sharing_its_parameters():
    from torchprof_lab.model_state import model_restored

    model = lazy_model()
    with model_restored(model, train=False) as run:
        assert run.module is not model and run.copied
        assert run.module[0].weight is model[0].weight  # materialised parameters are shared, not copied
        run.module(torch.randn(2, 3))
    assert is_lazy(model[1].weight)
