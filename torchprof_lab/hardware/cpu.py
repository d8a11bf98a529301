"""The CPU: what it is (model, cores, SIMD, clock), what it can do at most (the theoretical peak
per dtype, from the ISA) and what it does (measured matmul FLOP/s and copy bytes/s).

Two different numbers, for two different questions:

* **Utilisation** is measured against the *theoretical peak* (:meth:`CpuInfo.peak_flops`):
  cores x clock x FLOPs per cycle of the widest SIMD/matrix unit the flags show. Nothing can
  pass it (unless the clock read is wrong, which :func:`measure_cpu_ceilings` detects).
* The **roofline** uses the *measured attainable roofs* (:func:`measure_cpu_ceilings`): a large
  matmul in the dtype and a large copy. A faster kernel than the one measured (oneDNN convs
  vs a matmul) can pass them, so they are never a utilisation denominator.

The clock: a KVM guest has no cpufreq and its /proc/cpuinfo 'cpu MHz' is the nominal (TSC)
clock, not the turbo clock the cores run at (this project's AMD EPYC reads 2596 MHz and runs
at ~4280 MHz: its oneDNN fp32 matmul then does 475 GFLOP/s, past a 332 GFLOP/s "peak" at the
nominal clock). So the clock is also measured, by timing a chain of dependent integer adds (one
cycle each on every x86-64 core), and the peak uses the highest of the clocks read.
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..dtypes import precision
from ..timing.loop import CpuClock, sample

SIMD_FLAGS = ("sse", "sse2", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16",
              "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_fp16", "amx_int8")

# dtypes a CPU peak exists for (tf32 is accepted and read as fp32: a CPU has no TF32 unit)
CPU_DTYPES = ("fp32", "fp64", "bf16", "fp16", "int8")

# 512-bit/256-bit FMA pipes per core: 2 on the common server core (Intel Skylake-SP and later
# Xeons: Cascade Lake, Ice Lake, Sapphire/Emerald/Granite Rapids; AMD Zen 2-5). Cores with one
# (some Xeon Silver/Bronze SKUs, Intel client AVX-512 on port 0+1 fused) or with 512-bit done
# as two 256-bit halves (Zen 4, Zen 5 mobile) do half: for them this peak is an upper bound.
FMA_UNITS = 2
AMX_BF16_FLOPS_PER_CYCLE = 1024  # Intel AMX: a 16x32 bf16 tile multiply, 1024 FLOPs/cycle/core
AMX_FP16_FLOPS_PER_CYCLE = 1024  # AMX-FP16 (Granite Rapids): the same tile rate in fp16
AMX_INT8_OPS_PER_CYCLE = 2048  # AMX-INT8: 2048 int8 OPs/cycle/core

SPREAD_LIMIT = 0.10  # relative IQR of the repeats above which a measurement is 'disturbed'
OTHERS_LIMIT = 0.10  # other processes used more than this share of the machine's CPU time
STEAL_LIMIT = 0.05  # the hypervisor took more than this share of the guest's CPU time
MATMUL_SIZES = (256, 512, 1024, 2048, 3072, 4096)


# ---------------------------------------------------------------------- /proc/cpuinfo

def _cpuinfo() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU (empty off Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            blocks = fh.read().strip().split("\n\n")
    except OSError:
        return []
    return [dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines()))
            for block in blocks if block.strip()]


def cpu_model_name() -> str:
    """'AMD EPYC 7B13' from /proc/cpuinfo on Linux; platform's words elsewhere."""
    info = _cpuinfo()
    return (info[0].get("model name") if info else None) or platform.processor() or platform.machine()


_CPUFREQ_MAX = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"


def _cpufreq_max_mhz() -> float | None:
    try:
        with open(_CPUFREQ_MAX, encoding="utf-8") as fh:
            return int(fh.read().strip()) / 1000
    except (OSError, ValueError):
        return None


def _cpuinfo_mhz(info: list[dict[str, str]]) -> float | None:
    speeds = []
    for block in info:
        try:
            speeds.append(float(block["cpu MHz"]))
        except (KeyError, ValueError):
            pass
    return max(speeds) if speeds else None


def _max_mhz(info: list[dict[str, str]]) -> float | None:
    """cpufreq's max (turbo) clock if the kernel has cpufreq, else /proc/cpuinfo's 'cpu MHz'."""
    return _cpufreq_max_mhz() or _cpuinfo_mhz(info)


# ---------------------------------------------------------------------- the core clock, measured

# long chain(long n) { rax = n; do { 96 x "add rax, rax" } while (--rdi); return rax; }
# System V x86-64 ABI (n in rdi). Each add depends on the one before: 1 cycle each on every
# x86-64 core (no core folds a register-register add), so time = 96 n cycles / clock.
_CHAIN_ADDS = 96
_LOOP = bytes((0x48, 0x01, 0xC0)) * _CHAIN_ADDS + bytes((0x48, 0xFF, 0xCF))  # add rax, rax ...; dec rdi
_CHAIN_CODE = (bytes((0x48, 0x89, 0xF8))  # mov rax, rdi
               + _LOOP + bytes((0x0F, 0x85)) + (-(len(_LOOP) + 6)).to_bytes(4, "little", signed=True)  # jnz
               + bytes((0xC3,)))  # ret


@lru_cache(maxsize=1)
def measure_core_mhz(runs: int = 15, iterations: int = 50_000) -> float | None:
    """The clock one core runs at now, in MHz: a chain of dependent adds (1 cycle each) timed.

    The highest of ``runs`` runs (about 1 ms each at 4 GHz, shorter than a scheduler slice, so
    some run whole even on a loaded machine): being descheduled only makes a run slower, never
    faster, so the maximum is the clock. One thread, so it reads the one-core boost,
    at or above the all-core clock: a peak from it is an upper bound. Linux x86-64 only (the code
    is x86 machine code run through ctypes, in a page made executable after it is written, never
    both); None elsewhere or where the system refuses executable memory (SELinux execmem).
    Cached per process.
    """
    if not sys.platform.startswith("linux") or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    size = 4096
    prot_read, prot_write, prot_exec, map_private, map_anonymous = 1, 2, 4, 0x02, 0x20
    page = libc.mmap(None, size, prot_read | prot_write, map_private | map_anonymous, -1, 0)
    if page in (None, ctypes.c_void_p(-1).value):
        return None
    try:
        ctypes.memmove(page, _CHAIN_CODE, len(_CHAIN_CODE))
        if libc.mprotect(page, size, prot_read | prot_exec) != 0:
            return None
        chain = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long)(page)
        chain(1000)  # warm-up: page in, wake the core up
        best = 0.0
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            chain(iterations)
            elapsed = time.perf_counter_ns() - t0
            best = max(best, iterations * _CHAIN_ADDS / elapsed * 1e3)  # cycles per ns = GHz -> MHz
        return round(best, 1) or None
    finally:
        libc.munmap(page, size)


# ---------------------------------------------------------------------- the peak, a pure function

def cpu_dtype(dtype) -> str:
    """The canonical CPU dtype for a name/torch dtype: 'fp32', 'fp64', 'bf16', 'fp16', 'int8'
    ('tf32' -> 'fp32': a CPU has no TF32 unit, it computes fp32). ValueError for anything else."""
    name = precision(dtype, allowed=CPU_DTYPES + ("tf32",)).name
    return "fp32" if name == "tf32" else name


def _fp32_rate(flags: frozenset[str], fp64: bool = False) -> tuple[int, str]:
    """Per core per cycle: SIMD lanes x 2 (FMA) x FMA_UNITS, and the words for it."""
    if "avx512f" in flags:
        lanes, isa = 16, "AVX-512"
    elif "avx2" in flags or "avx" in flags:
        lanes, isa = 8, "AVX2" if "avx2" in flags else "AVX"
    else:
        lanes, isa = 4, "SSE"
    if fp64:
        lanes //= 2
    fma = "fma" in flags or "avx512f" in flags
    kind = "fp64" if fp64 else "fp32"
    units = f"{FMA_UNITS} FMA units" if fma else f"{FMA_UNITS} units (add + mul)"
    return lanes * (2 if fma else 1) * FMA_UNITS, f"{isa}: {lanes} {kind} lanes x {2 if fma else 1} " \
                                                  f"({'FMA' if fma else 'no FMA'}) x {units}"


def flops_per_cycle(flags: Iterable[str], dtype) -> tuple[int, str]:
    """FLOPs (int8: OPs) per cycle per core for ``dtype`` on a core with these cpuinfo ``flags``,
    and how that number is made. Rules:

    * fp32: 16 lanes (avx512f), 8 (avx2/avx) or 4 (sse) x 2 if the core has FMA (fma or avx512f)
      x FMA_UNITS (2: see its comment). fp64: half the lanes. tf32: fp32.
    * bf16: AMX-BF16 1024; AVX512-BF16 2x the fp32 AVX-512 rate (VDPBF16PS: 32 bf16
      multiply-adds per 512-bit instruction, 16 for an fp32 FMA); else the fp32 rate (bf16 is
      converted and computed in fp32, so fp32 bounds it).
    * fp16: AMX-FP16 1024; AVX512-FP16 2x the fp32 AVX-512 rate (32 fp16 lanes); else fp32.
    * int8: AMX-INT8 2048; AVX512-VNNI / AVX-VNNI 4 x fp32 lanes x 2 x FMA_UNITS (VPDPBUSD: 4
      int8 products summed into each 32-bit lane); else 2x the fp32 rate (16-bit multiply-adds).
    """
    flags = frozenset(flags)
    dtype = cpu_dtype(dtype)
    fp32, fp32_words = _fp32_rate(flags)
    avx512_fp32 = 16 * 2 * FMA_UNITS
    avx512_words = f"16 fp32 lanes x 2 (FMA) x {FMA_UNITS} FMA units"
    if dtype == "fp32":
        return fp32, fp32_words
    if dtype == "fp64":
        return _fp32_rate(flags, fp64=True)
    if dtype == "bf16":
        if "amx_bf16" in flags:
            return AMX_BF16_FLOPS_PER_CYCLE, "AMX-BF16: 16x32 bf16 tile multiply, 1024 FLOP/cycle per core"
        if "avx512_bf16" in flags:
            return 2 * avx512_fp32, f"AVX512-BF16: VDPBF16PS, 32 bf16 multiply-adds per 512-bit instruction = " \
                                    f"2x the fp32 rate of {avx512_words}"
        return fp32, f"no AVX512-BF16/AMX-BF16: bf16 is computed in fp32, {fp32_words}"
    if dtype == "fp16":
        if "amx_fp16" in flags:
            return AMX_FP16_FLOPS_PER_CYCLE, "AMX-FP16: 16x32 fp16 tile multiply, 1024 FLOP/cycle per core"
        if "avx512_fp16" in flags:
            return 2 * avx512_fp32, f"AVX512-FP16: 32 fp16 lanes = 2x the fp32 rate of {avx512_words}"
        return fp32, f"no AVX512-FP16/AMX-FP16: fp16 is computed in fp32, {fp32_words}"
    # int8
    if "amx_int8" in flags:
        return AMX_INT8_OPS_PER_CYCLE, "AMX-INT8: 16x64 int8 tile multiply, 2048 OP/cycle per core"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        lanes, isa = (16, "AVX512-VNNI") if "avx512_vnni" in flags and "avx512f" in flags else (8, "AVX-VNNI")
        return 4 * lanes * 2 * FMA_UNITS, f"{isa}: VPDPBUSD, 4 int8 products x {lanes} lanes x 2 " \
                                          f"(multiply-add) x {FMA_UNITS} units"
    return 2 * fp32, f"no VNNI/AMX-INT8: 2x the fp32 rate (16-bit multiply-adds), {fp32_words}"


@dataclass(frozen=True)
class CpuPeak:
    """A theoretical peak: cores x clock x per-core rate, with the arithmetic in words."""

    dtype: str
    cores: int
    mhz: float | None
    per_cycle: int  # per core: FLOPs (int8: OPs) per cycle
    per_cycle_words: str  # how per_cycle is made, e.g. "AVX-512: 16 fp32 lanes x 2 (FMA) x 2 FMA units"

    @property
    def unit(self) -> str:
        return "OP" if self.dtype == "int8" else "FLOP"

    @property
    def value(self) -> float | None:
        """FLOP/s (int8: OP/s); None without a clock."""
        return self.cores * self.mhz * 1e6 * self.per_cycle if self.mhz else None

    @property
    def formula(self) -> str:
        """'2 cores x 2596 MHz x 64 FLOP/cycle (AVX-512: ...) = 332 GFLOP/s'."""
        cores = f"{self.cores} core{'s' if self.cores != 1 else ''}"
        clock = f"{self.mhz:.0f} MHz" if self.mhz else "? MHz"
        result = f"{self.value / 1e9:.0f} G{self.unit}/s" if self.value else "unknown (no clock reading)"
        return f"{cores} x {clock} x {self.per_cycle} {self.unit}/cycle ({self.per_cycle_words}) = {result}"


def cpu_peak(flags: Iterable[str], cores: int, mhz: float | None, dtype) -> CpuPeak:
    """The theoretical peak of ``cores`` physical cores with these ``flags`` at ``mhz``: a pure
    function (no reading of this machine), so made-up CPUs can be checked."""
    per_cycle, words = flops_per_cycle(flags, dtype)
    return CpuPeak(cpu_dtype(dtype), max(1, int(cores)), mhz, per_cycle, words)


# ---------------------------------------------------------------------- this CPU

@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cpus: int
    physical_cores: int
    threads_used: int
    simd: tuple[str, ...]
    max_mhz: float | None  # the clock the peak assumes: the highest of those read (see frequency_source)
    frequency_source: str

    @property
    def cores_used(self) -> int:
        """Physical cores the threads can use: SMT siblings share one core's FMA units."""
        return max(1, min(self.threads_used, self.physical_cores))

    def peak(self, dtype="fp32") -> CpuPeak:
        return cpu_peak(self.simd, self.cores_used, self.max_mhz, dtype)

    def peak_flops(self, dtype="fp32") -> float | None:
        """Theoretical peak FLOP/s (int8: OP/s) for ``dtype`` with the threads in use; None
        without a clock reading."""
        return self.peak(dtype).value

    def peak_formula(self, dtype="fp32") -> str:
        return self.peak(dtype).formula

    @property
    def fp32_flops_per_cycle(self) -> int:
        """Per core: fp32 SIMD lanes x 2 (FMA) x 2 FMA units (the common server core)."""
        return flops_per_cycle(self.simd, "fp32")[0]

    @property
    def estimated_peak_flops(self) -> float | None:
        """The fp32 peak: cores in use x frequency x FLOPs/cycle."""
        return self.peak_flops("fp32")

    def to_dict(self) -> dict:
        return {"model": self.model, "logical_cpus": self.logical_cpus, "physical_cores": self.physical_cores,
                "threads_used": self.threads_used, "simd": list(self.simd), "max_mhz": self.max_mhz,
                "frequency_source": self.frequency_source, "fp32_flops_per_cycle": self.fp32_flops_per_cycle,
                "estimated_peak_flops": self.estimated_peak_flops,
                **{f"peak_flops_{dt}": self.peak_flops(dt) for dt in CPU_DTYPES},
                **{f"peak_formula_{dt}": self.peak_formula(dt) for dt in CPU_DTYPES}}


def _clock(info: list[dict[str, str]], measure: bool) -> tuple[float | None, str]:
    """The highest clock read, and in words where each reading comes from."""
    readings = []  # (MHz, words)
    cpufreq = _cpufreq_max_mhz()
    if cpufreq:
        readings.append((cpufreq, f"cpufreq cpuinfo_max_freq {cpufreq:.0f} MHz (max turbo)"))
    nominal = _cpuinfo_mhz(info)
    if nominal and not cpufreq:
        readings.append((nominal, f"/proc/cpuinfo cpu MHz {nominal:.0f} (the current/nominal clock, "
                                  f"not the turbo clock)"))
    measured = measure_core_mhz() if measure else None
    if measured:
        readings.append((measured, f"measured {measured:.0f} MHz (dependent-add chain, one core)"))
    if not readings:
        return None, "unknown"
    best = max(readings)
    others = [words for mhz, words in readings if (mhz, words) != best]
    return best[0], best[1] + (f"; also read: {'; '.join(others)}" if others else "")


def cpu_info(measure_clock: bool = True) -> CpuInfo:
    """This CPU with the current torch thread count. ``measure_clock=False`` skips timing the core
    clock (about 20 ms once per process) and trusts cpufreq or /proc/cpuinfo alone."""
    info = _cpuinfo()
    flags = set(info[0].get("flags", "").split()) if info else set()
    cores = {(b.get("physical id"), b.get("core id")) for b in info if "core id" in b}
    mhz, source = _clock(info, measure_clock)
    logical = os.cpu_count() or 1
    return CpuInfo(model=cpu_model_name(), logical_cpus=logical, physical_cores=len(cores) or logical,
                   threads_used=torch.get_num_threads(), simd=tuple(f for f in SIMD_FLAGS if f in flags),
                   max_mhz=mhz, frequency_source=source)


# ---------------------------------------------------------------------- measured roofs

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
    """Median FLOP/s of a large matmul in ``dtype`` and bytes/s (read + write) of a ``copy_mib``
    MiB copy, in about ``budget`` seconds (3/4 matmul, 1/4 copy; at least 5 repeats each).

    The matmul size (256 .. 4096, or ``n``) and kernel (torch.mm; for fp32 also oneDNN's linear)
    are those with the highest rate among the ones whose repeats fit the budget. int8 has no
    matmul worth timing here (torch's CPU int8 matmul is a slow generic path), so int8 runs the
    fp32 matmul and says so in ``note``. ``disturbed`` is True, with the reason in ``note``, when
    a spread passes SPREAD_LIMIT, other processes used more than OTHERS_LIMIT of the machine's CPU
    time (/proc/stat), the hypervisor stole more than STEAL_LIMIT, or the median matmul passes the
    theoretical peak (the clock read is wrong). Cached per process (threads, dtype, budget, ...).
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
    seconds = time.perf_counter() - started
    peak = info.peak_flops(run_dtype)

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
                     f"{peak / 1e9:.0f} GFLOP/s: the clock read is wrong ({info.frequency_source})")
    said = notes + (["int8: the fp32 matmul was measured (torch has no fast int8 CPU matmul)"]
                    if asked == "int8" else [])
    return MeasuredCeilings(matmul.median, copy.median, used, seconds, asked, run_dtype, size, kernel,
                            matmul.spread, copy.spread, others, steal, peak, bool(notes), "; ".join(said) or None)
