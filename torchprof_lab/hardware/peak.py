"""Theoretical peaks by formula: FLOP/s = SMs x per-SM FMA/clock x 2 x clock; bytes/s = bus x rate."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from ..dtypes import precision
from .specs import CONFIG_DIR, CUDA_CORE_COLUMNS, TENSOR_CORE_COLUMNS, GpuSpec, find_gpu


@dataclass(frozen=True)
class Peak:
    """A peak with the numbers that made it, so a reader can check the arithmetic."""

    value: float  # FLOP/s (or OP/s for int8)
    gpu: str
    dtype: str
    tensor_cores: bool
    sms: int
    per_sm_fma: float
    clock_mhz: float
    clock: str  # "boost", "datasheet" (the clock the vendor's figure implies) or "given"
    derived: bool = False  # True when not from the table (NVML clock x compute-capability rates)

    @property
    def formula(self) -> str:
        return (f"{self.sms} SMs x {self.per_sm_fma:g} FMA/clk x 2 x {self.clock_mhz:g} MHz "
                f"= {self.value / 1e12:.1f} TFLOPS ({self.clock} clock)")


def _spec(gpu) -> GpuSpec:
    return gpu if isinstance(gpu, GpuSpec) else find_gpu(gpu)


def peak_flops(gpu, dtype: str = "fp32", tensor_cores: bool | None = None, clock="datasheet") -> float:
    """Peak FLOP/s of ``gpu`` (a name as NVML or the table writes it) for ``dtype``: by default
    the vendor's dense datasheet figure, the denominator of MFU in papers and frameworks."""
    return peak(gpu, dtype, tensor_cores, clock).value


def _check_clock(clock):
    if clock in ("boost", "datasheet"):
        return
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not clock == clock or \
            clock <= 0 or clock == float("inf"):
        raise ValueError(f"clock must be 'datasheet', 'boost' or a positive number of MHz, got {clock!r}")


def peak(gpu, dtype: str = "fp32", tensor_cores: bool | None = None, clock="datasheet") -> Peak:
    """Peak FLOP/s of ``gpu`` for ``dtype`` with its arithmetic: clock is "datasheet", "boost" or MHz.

    "datasheet" uses the clock the vendor's own dense figure implies, which on Hopper,
    Blackwell and L40S tensor cores sits below the boost clock (H100 SXM fp16: 989.4 TFLOPS
    datasheet, 1070.5 by the formula at the 1980 MHz boost clock).
    """
    spec = _spec(gpu)
    _check_clock(clock)
    dtype = precision(dtype).name
    use_tc = precision(dtype).tensor_cores if tensor_cores is None else bool(tensor_cores)
    columns = TENSOR_CORE_COLUMNS if use_tc else CUDA_CORE_COLUMNS
    column = columns.get(dtype)
    per_sm = spec.per_sm.get(column) if column else None
    if not per_sm:
        kind = "tensor cores" if use_tc else "CUDA cores"
        raise ValueError(f"{spec.gpu} has no {dtype} rate on {kind} in the table")
    if clock == "boost":
        mhz, label = spec.boost_mhz, "boost"
    elif clock == "datasheet":
        mhz, label = spec.implied_mhz(column) or spec.boost_mhz, "datasheet"
    else:
        mhz, label = float(clock), "given"
    # to the whole FLOP/s: a clock implied by a datasheet figure is a float (312 TFLOPS, not 311.99...)
    return Peak(float(round(spec.sms * per_sm * 2 * mhz * 1e6)), spec.gpu, dtype, use_tc, spec.sms, per_sm, mhz,
                label)


def peak_bandwidth(gpu) -> float:
    """Peak memory bandwidth in bytes/s: bus width / 8 x per-pin data rate."""
    spec = _spec(gpu)
    return spec.bus_bits / 8 * spec.mem_gbps_per_pin * 1e9


def derived_bandwidth(bus_bits: float, memory_clock_mhz: float) -> float:
    """Bytes/s for a GPU missing from the table: bus / 8 x NVML's max memory clock x 2 (double
    data rate); reproduces the A100's 5120 / 8 x 1215 MHz x 2 = 1555 GB/s."""
    return bus_bits / 8 * memory_clock_mhz * 1e6 * 2


def ridge_point(gpu, dtype: str = "fp32", tensor_cores: bool | None = None) -> float:
    """FLOPs per byte above which a kernel is compute-bound rather than memory-bound."""
    return peak_flops(gpu, dtype, tensor_cores) / peak_bandwidth(gpu)


def derived_peak(name: str, sms: int, compute_capability: str, clock_mhz: float, dtype: str = "fp32",
                 tensor_cores: bool | None = None) -> Peak:
    """Peak for a GPU missing from the table: its SM count and clock (NVML's max SM clock)
    times the per-SM rate of its compute capability (configs/cc_throughput.csv). Marked derived."""
    with open(CONFIG_DIR / "cc_throughput.csv", newline="", encoding="utf-8") as fh:
        rates = {row["compute_capability"]: row for row in csv.DictReader(fh)}
    if compute_capability not in rates:
        raise ValueError(f"no throughput table for compute capability {compute_capability}")
    dtype = precision(dtype).name
    _check_clock(clock_mhz)
    use_tc = precision(dtype).tensor_cores if tensor_cores is None else tensor_cores
    column = (TENSOR_CORE_COLUMNS if use_tc else CUDA_CORE_COLUMNS).get(dtype)
    value = rates[compute_capability].get(column or "", "")
    if not value:
        raise ValueError(f"compute capability {compute_capability} has no {dtype} rate in the table")
    per_sm = float(value)
    return Peak(sms * per_sm * 2 * clock_mhz * 1e6, name, dtype, use_tc, sms, per_sm, clock_mhz, "given", derived=True)
