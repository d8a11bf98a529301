"""The CPU: what it is (model, cores, SIMD), what it could do (estimated peak) and what it does
(measured matmul FLOP/s and copy bytes/s), so CPU runs get a utilisation and a roofline too."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from functools import lru_cache

import torch

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
              "amx_tile", "amx_bf16", "amx_int8")


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


def _max_mhz(info: list[dict[str, str]]) -> float | None:
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding="utf-8") as fh:
            return int(fh.read().strip()) / 1000
    except (OSError, ValueError):
        pass
    speeds = [float(block["cpu MHz"]) for block in info if "cpu MHz" in block]
    return max(speeds) if speeds else None


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cpus: int
    physical_cores: int
    threads_used: int
    simd: tuple[str, ...]
    max_mhz: float | None
    frequency_source: str

    @property
    def fp32_flops_per_cycle(self) -> int:
        """Per core: fp32 SIMD lanes x 2 (FMA) x 2 FMA units (the common server core)."""
        lanes = 16 if "avx512f" in self.simd else 8 if "avx2" in self.simd else 4
        return lanes * 2 * (2 if "fma" in self.simd or "avx512f" in self.simd else 1)

    @property
    def estimated_peak_flops(self) -> float | None:
        """cores in use x frequency x FLOPs/cycle; SMT siblings share one core's FMA units."""
        if not self.max_mhz:
            return None
        cores = min(self.threads_used, self.physical_cores)
        return cores * self.max_mhz * 1e6 * self.fp32_flops_per_cycle

    def to_dict(self) -> dict:
        return {"model": self.model, "logical_cpus": self.logical_cpus, "physical_cores": self.physical_cores,
                "threads_used": self.threads_used, "simd": list(self.simd), "max_mhz": self.max_mhz,
                "frequency_source": self.frequency_source, "fp32_flops_per_cycle": self.fp32_flops_per_cycle,
                "estimated_peak_flops": self.estimated_peak_flops}


def cpu_info() -> CpuInfo:
    info = _cpuinfo()
    flags = set(info[0].get("flags", "").split()) if info else set()
    cores = {(b.get("physical id"), b.get("core id")) for b in info if "core id" in b}
    mhz = _max_mhz(info)
    source = ("cpufreq cpuinfo_max_freq" if os.path.exists("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
              else "/proc/cpuinfo cpu MHz (current, not max)" if mhz else "unknown")
    logical = os.cpu_count() or 1
    return CpuInfo(model=cpu_model_name(), logical_cpus=logical, physical_cores=len(cores) or logical,
                   threads_used=torch.get_num_threads(), simd=tuple(f for f in SIMD_FLAGS if f in flags),
                   max_mhz=mhz, frequency_source=source)


@dataclass(frozen=True)
class MeasuredCeilings:
    """What this CPU sustains with this thread count: a large fp32 matmul and a large copy."""

    matmul_flops: float
    copy_bytes_per_s: float
    threads: int
    seconds: float

    @property
    def ridge_point(self) -> float:
        return self.matmul_flops / self.copy_bytes_per_s


def _median_rate(work, amount: float, budget: float, min_runs: int = 5) -> float:
    """Median rate over runs for ``budget`` seconds (at least ``min_runs``): a median, because a
    single lucky run (one copy read 58 GB/s where the rest read 32) made best-of unstable."""
    work()  # warm-up
    rates, started = [], time.perf_counter()
    while time.perf_counter() - started < budget or len(rates) < min_runs:
        t0 = time.perf_counter_ns()
        work()
        rates.append(amount / ((time.perf_counter_ns() - t0) / 1e9))
    return statistics.median(rates)


@lru_cache(maxsize=8)
def measure_cpu_ceilings(threads: int | None = None, budget: float = 1.0, n: int = 1024,
                         copy_mib: int = 128) -> MeasuredCeilings:
    """Median FLOP/s of an n x n fp32 matmul and bytes/s (read + write) of a large copy.
    Cached per process: the CPU does not change between two profiles."""
    saved = torch.get_num_threads()
    started = time.perf_counter()
    try:
        if threads:
            torch.set_num_threads(threads)
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        flops = _median_rate(lambda: torch.mm(a, b, out=out), 2 * n ** 3, budget)
        src = torch.empty(copy_mib * 2 ** 20 // 4).normal_()
        dst = torch.empty_like(src)
        bandwidth = _median_rate(lambda: dst.copy_(src), 2 * src.nbytes, budget)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)
    return MeasuredCeilings(flops, bandwidth, used, time.perf_counter() - started)
