"""A CPU's theoretical peak per precision, from its ISA: cores x clock x FLOPs per cycle of the
widest SIMD or matrix unit its flags show. A pure function of (flags, cores, clock, dtype), so
made-up CPUs can be checked; utilisation divides by it, so nothing can pass it unless the
clock read is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..dtypes import precision

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


def cpu_dtype(dtype) -> str:
    """The canonical CPU dtype for a name/torch dtype: 'fp32', 'fp64', 'bf16', 'fp16', 'int8'
    ('tf32' -> 'fp32': a CPU has no TF32 unit, it computes fp32). ValueError for anything else."""
    name = precision(dtype, allowed=CPU_DTYPES + ("tf32",)).name
    return "fp32" if name == "tf32" else name


X86_SIMD = frozenset({"sse", "sse2", "avx", "avx2", "avx512f"})


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
    if not flags & X86_SIMD:  # not an x86 core (ARM lists "Features", not flags): no table for it
        return 0, "unknown: no x86 SIMD flags read (this table covers x86-64 only)"
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
        """FLOP/s (int8: OP/s); None without a clock or an ISA the table covers."""
        return self.cores * self.mhz * 1e6 * self.per_cycle if self.mhz and self.per_cycle else None

    @property
    def formula(self) -> str:
        """'2 cores x 2596 MHz x 64 FLOP/cycle (AVX-512: ...) = 332 GFLOP/s'."""
        cores = f"{self.cores} core{'s' if self.cores != 1 else ''}"
        clock = f"{self.mhz:.0f} MHz" if self.mhz else "? MHz"
        result = f"{self.value / 1e9:.0f} G{self.unit}/s" if self.value else \
            "unknown (no clock reading)" if self.per_cycle else "unknown (ISA not in the table)"
        return f"{cores} x {clock} x {self.per_cycle} {self.unit}/cycle ({self.per_cycle_words}) = {result}"


def cpu_peak(flags: Iterable[str], cores: int, mhz: float | None, dtype) -> CpuPeak:
    """The theoretical peak of ``cores`` physical cores with these ``flags`` at ``mhz``: a pure
    function (no reading of this machine), so made-up CPUs can be checked."""
    per_cycle, words = flops_per_cycle(flags, dtype)
    return CpuPeak(cpu_dtype(dtype), max(1, int(cores)), mhz, per_cycle, words)
