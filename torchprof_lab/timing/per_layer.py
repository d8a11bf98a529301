"""Per-layer latency: a separate pass that times every module call with the run's clock."""

from __future__ import annotations

import statistics

from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from .loop import sample


def time_layers(work: nn.Module, step, clock, runs: int) -> tuple[dict[str, float], float]:
    """({layer name: median seconds per forward, all its calls summed}, whole-step median).

    Parents include their children. On a GPU each layer's end event is synchronized, which
    serialises the run: the sum of layers against the whole-model time shows that overhead.
    """
    names = {m: n for n, m in work.named_modules()}
    started: list = []
    per_run: dict[str, float] = {}
    samples: dict[str, list[float]] = {n: [] for n in names.values()}

    def pre(module, args):
        if module in names:
            started.append(clock.start())

    def post(module, args, output):
        if module in names and started:
            name = names[module]
            per_run[name] = per_run.get(name, 0.0) + clock.stop(started.pop())

    def one_run():
        per_run.clear()
        step()

    def keep_layers():
        for name, seconds in per_run.items():
            samples[name].append(seconds)

    handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]
    try:
        totals = sample(one_run, clock, min_runs=runs, max_runs=runs, after=keep_layers)
    finally:
        for handle in handles:
            handle.remove()
    medians = {name: statistics.median(values) for name, values in samples.items() if values}
    return medians, statistics.median(totals)
