"""The package's one timing loop, and its clocks: CUDA events on a GPU, a monotonic
nanosecond clock on the CPU.

Both clocks expose the same calls, so every timed thing (benchmark rows, per-layer passes,
DDP steps, the CPU's ceilings) runs through ``sample`` whichever device runs it.
"""

from __future__ import annotations

import time

import torch


class CpuClock:
    """time.perf_counter_ns around the region; CPU ops are synchronous, so nothing to wait for."""

    name = "time.perf_counter_ns (monotonic)"

    def start(self):
        return time.perf_counter_ns()

    def stop(self, started) -> float:
        return (time.perf_counter_ns() - started) / 1e9

    def between(self, first, later) -> float:
        """Seconds from one start mark to a later one (a span's offset in its run)."""
        return (later - first) / 1e9

    def synchronize(self) -> None:
        pass


class CudaClock:
    """A CUDA event pair on the current stream; synchronizes on the end event before reading."""

    name = "torch.cuda.Event(enable_timing=True)"

    def __init__(self, device: torch.device):
        self.device = device

    def start(self):
        begin = torch.cuda.Event(enable_timing=True)
        begin.record()
        return begin

    def stop(self, begin) -> float:
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3

    def between(self, first, later) -> float:
        """Seconds from one start event to a later one; both must have completed (read after a stop)."""
        return first.elapsed_time(later) / 1e3

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


def clock_for(device: torch.device):
    return CudaClock(device) if device.type == "cuda" else CpuClock()


def sample(step, clock, *, min_time: float = 0.0, min_runs: int = 1, max_runs: int | None = None,
           max_time: float = float("inf"), after=None) -> list[float]:
    """Seconds of ``step()``, one synchronized call at a time, until both min_time and min_runs
    are met, or max_runs calls or max_time seconds are reached (a fixed count: min_runs=max_runs).
    ``after()``, if given, runs after each timed call, outside the timed region."""
    max_runs = max_runs if max_runs is not None else max(min_runs, 1_000_000)
    samples: list[float] = []
    total = 0.0
    while len(samples) < max_runs and total < max_time and (total < min_time or len(samples) < min_runs):
        started = clock.start()
        step()
        elapsed = clock.stop(started)
        samples.append(elapsed)
        total += elapsed
        if after is not None:
            after()
    return samples


def run_back_to_back(step, clock, repeats: int) -> float:
    """Seconds per call over ``repeats`` back-to-back calls, with one sync at the end."""
    clock.synchronize()
    started = clock.start()
    for _ in range(repeats):
        step()
    return clock.stop(started) / repeats
