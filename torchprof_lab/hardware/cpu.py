"""The CPU: what it is (model, cores, SIMD flags, clock) and its theoretical peak per precision
(cpu_peak.py's formula at the clock read here: cpufreq, /proc/cpuinfo or clock_probe.py's
measurement, the highest). The measured roofs are cpu_roofs.py's.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch

from .clock_probe import measure_core_mhz
from .cpu_peak import CPU_DTYPES, CpuPeak, cpu_peak, flops_per_cycle

SIMD_FLAGS = ("sse", "sse2", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16",
              "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_fp16", "amx_int8")


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


def usable_cpus() -> int | None:
    """The logical CPUs this process may run on (a container's cpuset or an affinity mask can allow
    fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count()


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
