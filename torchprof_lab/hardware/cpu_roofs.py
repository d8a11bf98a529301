"""What this CPU sustains, measured: a large matmul in a precision and a large copy, with their
repeat spread and whether other load disturbed them. The attainable roofs of the roofline;
never a utilisation denominator (a faster kernel than the one measured can pass them)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import torch

from ..dtypes import precision
from ..timing.loop import CpuClock, sample
from .clock_probe import measure_core_mhz_again
from .cpu import cpu_info
from .cpu_peak import cpu_dtype

SPREAD_LIMIT = 0.10  # relative IQR of the repeats above which a measurement is 'disturbed'
OTHERS_LIMIT = 0.10  # other processes used more than this share of the machine's CPU time
STEAL_LIMIT = 0.05  # the hypervisor took more than this share of the guest's CPU time
MATMUL_SIZES = (256, 512, 1024, 2048, 3072, 4096)


@dataclass(frozen=True)
class MeasuredCeilings:
    """What this CPU sustains with this thread count: a large matmul in ``dtype`` and a large
    copy. The attainable roofs of the roofline; never a utilisation denominator (a faster kernel
    can pass them: use :meth:`CpuInfo.peak_flops` for that).

    Spreads are the relative interquartile range of the repeats' rates, (Q3 - Q1) / median
    (inclusive quartiles: with 5 repeats, 4th minus 2nd fastest over the median), so one
    preempted run does not count but a swinging machine does.
    """

    matmul_flops: float
    copy_bytes_per_s: float
    threads: int
    seconds: float
    dtype: str = "fp32"  # the dtype asked for
    matmul_dtype: str = "fp32"  # the dtype the matmul ran in (int8 runs fp32: see note)
    matmul_n: int = 0
    matmul_kernel: str = "torch.mm"  # 'torch.mm' or 'oneDNN linear' (the faster at matmul_n)
    matmul_spread: float = 0.0
    copy_spread: float = 0.0
    others_cpu_share: float | None = None  # CPU time of other processes / (wall time x logical CPUs)
    steal_share: float | None = None  # CPU time the hypervisor took / (wall time x logical CPUs)
    peak_flops: float | None = None  # the theoretical peak for matmul_dtype with these threads
    disturbed: bool = False
    note: str | None = None

    @property
    def ridge_point(self) -> float:
        return self.matmul_flops / self.copy_bytes_per_s

    @property
    def fraction_of_peak(self) -> float | None:
        return self.matmul_flops / self.peak_flops if self.peak_flops else None

    def to_dict(self) -> dict:
        return {**self.__dict__, "ridge_point": self.ridge_point, "fraction_of_peak": self.fraction_of_peak}


@dataclass(frozen=True)
class _Rate:
    median: float
    spread: float  # relative IQR: (Q3 - Q1) / median
    runs: int


def _relative_iqr(rates: list[float]) -> float:
    if len(rates) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(rates, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(rates)


def _median_rate(work: Callable[[], object], amount: float, budget: float, min_runs: int = 5) -> _Rate:
    """Median rate over runs for ``budget`` seconds (at least ``min_runs``), with its spread: a
    median, because a single lucky run (one copy read 58 GB/s where the rest read 32) made
    best-of unstable. Timed by the package's one loop."""
    work()  # warm-up
    rates = [amount / seconds for seconds in sample(work, CpuClock(), min_time=budget, min_runs=min_runs)]
    return _Rate(statistics.median(rates), _relative_iqr(rates), len(rates))


@dataclass(frozen=True)
class _CpuTimes:
    """Seconds of CPU time so far: the whole machine's busy time, the hypervisor's steal (both
    from /proc/stat, all CPUs) and this process's own (os.times)."""

    wall: float
    busy: float | None
    steal: float | None
    own: float

    @classmethod
    def now(cls) -> _CpuTimes:
        own = os.times()
        busy = steal = None
        try:
            with open("/proc/stat", encoding="utf-8") as fh:
                name, *ticks = fh.readline().split()
            if name == "cpu" and len(ticks) >= 8:
                user, nice, system, _idle, _iowait, irq, softirq, stolen = (int(t) for t in ticks[:8])
                hz = os.sysconf("SC_CLK_TCK")
                busy, steal = (user + nice + system + irq + softirq) / hz, stolen / hz
        except (OSError, ValueError):
            pass
        return cls(time.perf_counter(), busy, steal, own.user + own.system)

    def shares_since(self, before: _CpuTimes) -> tuple[float | None, float | None]:
        """(other processes', hypervisor's) share of all CPUs' time since ``before``."""
        capacity = (self.wall - before.wall) * (os.cpu_count() or 1)
        if self.busy is None or before.busy is None or capacity <= 0:
            return None, None
        others = (self.busy - before.busy - (self.own - before.own)) / capacity
        return max(0.0, others), (self.steal - before.steal) / capacity


def _matmul_kernels(dtype: torch.dtype) -> list[tuple[str, Callable[[int], Callable[[], object]]]]:
    """(name, make(n) -> run) for the matmuls worth timing in ``dtype``: torch.mm (MKL for fp32,
    oneDNN for bf16) and, for fp32, oneDNN's linear, which is the faster one where MKL takes its
    AVX2 path (AMD CPUs: 212 vs 475 GFLOP/s on this project's EPYC) and is what oneDNN convs get."""

    def mm(n):
        a, b, out = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype), torch.empty(n, n, dtype=dtype)
        return lambda: torch.mm(a, b, out=out)

    kernels = [("torch.mm", mm)]
    linear = getattr(torch.ops.aten, "mkldnn_linear", None)
    if dtype == torch.float32 and linear is not None and torch.backends.mkldnn.is_available():
        def onednn(n):
            a, b = torch.randn(n, n).to_mkldnn(), torch.randn(n, n)
            return lambda: linear(a, b)

        kernels.append(("oneDNN linear", onednn))
    return kernels


def _best_matmul(dtype: torch.dtype, budget: float, min_runs: int, n: int | None):
    """(rate, n, kernel name): the (size, kernel) with the highest single-run rate among those
    that fit ``budget`` (probe: warm-up + one timed run; then ``min_runs`` repeats at the best),
    then the median over repeats at it. ``n`` given: only that size."""
    started = time.perf_counter()
    sizes = (n,) if n else MATMUL_SIZES
    probes = []  # (rate, n, name, run)
    last_time: dict[str, tuple[int, float]] = {}  # kernel -> (n, seconds of one run) at its last probe
    kernels = _matmul_kernels(dtype)
    for size in sizes:
        for name, make in kernels:
            if name in last_time:
                prev_n, prev_s = last_time[name]
                estimate = prev_s * (size / prev_n) ** 3
                best_s = max(((r, 2 * s ** 3 / r) for r, s, *_ in probes), default=(0, estimate))[1]
                spent = time.perf_counter() - started
                # its probe (2 runs) and, should it win, the repeats, must fit the budget
                if spent + 2 * estimate + (min_runs + 1) * max(estimate, best_s) > budget:
                    continue
                if probes and _last_rate(probes, name) < 0.7 * max(p[0] for p in probes):
                    continue  # far behind the best kernel: not worth its time at larger sizes
            try:
                run = make(size)
                run()  # warm-up (and the check that this kernel takes this dtype here)
            except (RuntimeError, NotImplementedError):
                continue
            t0 = time.perf_counter()
            run()
            seconds = time.perf_counter() - t0
            last_time[name] = (size, seconds)
            probes.append((2 * size ** 3 / seconds, size, name, run))
    if not probes:
        raise RuntimeError(f"no matmul kernel runs {dtype} on this CPU")
    _, size, name, run = max(probes, key=lambda p: p[0])
    del probes  # free the other sizes' tensors before the repeats
    remaining = budget - (time.perf_counter() - started)
    return _median_rate(run, 2 * size ** 3, max(0.0, remaining), min_runs), size, name


def _last_rate(probes, name: str) -> float:
    """The rate of ``name``'s most recent probe."""
    return next(r for r, _, kernel, _ in reversed(probes) if kernel == name)


@lru_cache(maxsize=16)
def measure_cpu_ceilings(threads: int | None = None, dtype: str = "fp32", budget: float = 1.0,
                         n: int | None = None, copy_mib: int = 128) -> MeasuredCeilings:
    """The roofs, measured by ``measure_once``; a disturbed measurement is taken once more and the
    steadier of the two kept (not disturbed first, then the smaller spread), with both said in its
    note: the roofline and the bound labels rest on these figures. Cached per process."""
    first = measure_once(threads, dtype, budget, n, copy_mib)
    if not first.disturbed:
        return first
    second = measure_once(threads, dtype, budget, n, copy_mib)
    kept = min((first, second), key=lambda m: (m.disturbed, max(m.matmul_spread, m.copy_spread)))
    said = (f"measured twice: the first was disturbed ({first.note}); the second "
            + (f"too ({second.note})" if second.disturbed else f"was not{f' ({second.note})' if second.note else ''}")
            + f"; the {'first' if kept is first else 'second'} is kept")
    return replace(kept, note=said, seconds=first.seconds + second.seconds)


def measure_once(threads: int | None = None, dtype: str = "fp32", budget: float = 1.0,
                 n: int | None = None, copy_mib: int = 128) -> MeasuredCeilings:
    """Median FLOP/s of a large matmul in ``dtype`` and bytes/s (read + write) of a ``copy_mib``
    MiB copy, in about ``budget`` seconds (3/4 matmul, 1/4 copy; at least 5 repeats each).

    The matmul size (256 .. 4096, or ``n``) and kernel (torch.mm; for fp32 also oneDNN's linear)
    are those with the highest rate among the ones whose repeats fit the budget. int8 has no
    matmul worth timing here (torch's CPU int8 matmul is a slow generic path), so int8 runs the
    fp32 matmul and says so in ``note``. ``disturbed`` is True, with the reason in ``note``, when
    a spread passes SPREAD_LIMIT, other processes used more than OTHERS_LIMIT of the machine's CPU
    time (/proc/stat), the hypervisor stole more than STEAL_LIMIT, or the median matmul passes the
    theoretical peak even after the core clock is measured again (the clock read is wrong).
    """
    asked = cpu_dtype(dtype)
    run_dtype = "fp32" if asked == "int8" else asked
    saved = torch.get_num_threads()
    started = time.perf_counter()
    try:
        if threads:
            torch.set_num_threads(threads)
        used = torch.get_num_threads()
        info = cpu_info()  # the clock probe runs here, before the load
        before = _CpuTimes.now()
        matmul, size, kernel = _best_matmul(precision(run_dtype).dtype, 0.75 * budget, 5, n)
        src = torch.empty(copy_mib * 2 ** 20 // 4).fill_(1.0)
        dst = torch.zeros_like(src)
        copy = _median_rate(lambda: dst.copy_(src), 2 * src.nbytes, 0.25 * budget, 5)
        del src, dst
        others, steal = _CpuTimes.now().shares_since(before)
    finally:
        torch.set_num_threads(saved)
    peak = info.peak_flops(run_dtype)
    reread = ""
    if peak and matmul.median > peak:
        measure_core_mhz_again()  # the first clock reading may have been low: take it again
        info = replace(cpu_info(), threads_used=used)  # the measurement's threads, not the caller's
        reread = f" (read again: {info.max_mhz:.0f} MHz)"
        peak = info.peak_flops(run_dtype)
    seconds = time.perf_counter() - started

    notes = []  # why the measurement is disturbed
    if matmul.spread > SPREAD_LIMIT:
        notes.append(f"matmul spread {matmul.spread:.0%} > {SPREAD_LIMIT:.0%} over {matmul.runs} repeats")
    if copy.spread > SPREAD_LIMIT:
        notes.append(f"copy spread {copy.spread:.0%} > {SPREAD_LIMIT:.0%} over {copy.runs} repeats")
    if others is not None and others > OTHERS_LIMIT:
        notes.append(f"other processes used {others:.0%} of the CPUs meanwhile")
    if steal is not None and steal > STEAL_LIMIT:
        notes.append(f"the hypervisor stole {steal:.0%} of the CPU time")
    if peak and matmul.median > peak:
        notes.append(f"median matmul {matmul.median / 1e9:.0f} GFLOP/s passes the theoretical peak "
                     f"{peak / 1e9:.0f} GFLOP/s: the clock read is wrong ({info.frequency_source}{reread})")
    said = notes + (["int8: the fp32 matmul was measured (torch has no fast int8 CPU matmul)"]
                    if asked == "int8" else [])
    return MeasuredCeilings(matmul.median, copy.median, used, seconds, asked, run_dtype, size, kernel,
                            matmul.spread, copy.spread, others, steal, peak, bool(notes), "; ".join(said) or None)
