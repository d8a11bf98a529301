"""Per-layer latency: a separate pass that times every module call with the run's clock, and
keeps each timed run's calls as spans (the Chrome trace draws them)."""

from __future__ import annotations

import statistics
import time

from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..torch_internals import uncompiled_name
from .loop import sample
from .result import ForwardSpans, LayerSpan


def time_layers(work: nn.Module, step, clock, runs: int,
                batch_size: int = 0) -> tuple[dict[str, float], float, tuple[ForwardSpans, ...]]:
    """({layer name: median seconds per forward, all its calls summed}, whole-step median,
    every timed run's module calls as spans).

    Parents include their children. On a GPU each layer's end event is synchronized, which
    serialises the run: the sum of layers against the whole-model time shows that overhead.
    A span's start is its start mark's distance from a mark taken as the run begins (CUDA
    events: elapsed time between them), read after the run, outside the timed region.
    """
    names = {m: n for n, m in work.named_modules()}
    started: list = []
    per_run: dict[str, float] = {}
    calls: list[tuple[str, object, float, int]] = []  # (name, start mark, seconds, depth), in end order
    run_start: list = [0.0, None]  # time.monotonic(), the clock's mark
    kept: list[tuple[float, tuple[LayerSpan, ...]]] = []
    samples: dict[str, list[float]] = {n: [] for n in names.values()}

    def pre(module, args):
        if module in names:
            started.append(clock.start())

    def post(module, args, output):
        if module in names and started:
            name = names[module]
            mark = started.pop()
            seconds = clock.stop(mark)
            per_run[name] = per_run.get(name, 0.0) + seconds
            calls.append((name, mark, seconds, len(started)))

    def one_run():
        per_run.clear()
        calls.clear()
        run_start[:] = [time.monotonic(), clock.start()]
        step()

    def keep_layers():
        for name, seconds in per_run.items():
            samples[name].append(seconds)
        host, origin = run_start
        spans = (LayerSpan(uncompiled_name(name), clock.between(origin, mark), seconds, depth)
                 for name, mark, seconds, depth in calls)
        kept.append((host, tuple(sorted(spans, key=lambda s: (s.start, s.depth)))))

    handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]
    try:
        totals = sample(one_run, clock, min_runs=runs, max_runs=runs, after=keep_layers)
    finally:
        for handle in handles:
            handle.remove()
    medians = {name: statistics.median(values) for name, values in samples.items() if values}
    forwards = tuple(ForwardSpans(batch_size, total, host, spans) for total, (host, spans) in zip(totals, kept))
    return medians, statistics.median(totals), forwards
