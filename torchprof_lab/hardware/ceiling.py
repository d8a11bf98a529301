"""The ceilings a run is compared against: the device's theoretical peak (utilisation) and its
attainable roofs (the roofline), for the precision the run computed in."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..dtypes import precision
from .cpu import cpu_info
from .cpu_roofs import measure_cpu_ceilings
from .nvml import gpu_readings, handle_for, load_nvml
from .peak import derived_bandwidth, derived_peak, peak, peak_bandwidth
from .specs import UnknownGpuError, find_gpu


@dataclass(frozen=True)
class Ceiling:
    """Peak compute and bandwidth, with where they come from.

    peak_flops is the theoretical peak (GPU: the vendor's dense datasheet figure; CPU: cores x
    clock x FLOPs/cycle of the ISA) and is what utilisation divides by. The roofline uses the
    attainable roofs: measured on a CPU (a large matmul in the run's precision, a large copy),
    the peaks themselves on a GPU.
    """

    device: str
    dtype: str
    peak_flops: float | None  # None: not known here (a CPU whose ISA or clock cannot be read)
    peak_bandwidth: float
    source: str
    attainable_flops: float | None = None  # measured matmul FLOP/s (CPU)
    attainable_bandwidth: float | None = None  # measured copy bytes/s (CPU)
    boost_flops: float | None = None  # GPU: the formula at the boost clock, beside the datasheet figure
    boost_formula: str | None = None
    clock_mhz: float | None = None  # the SM clock peak_flops implies (GPU), to rescale to the clock seen
    notes: tuple[str, ...] = ()  # e.g. a measurement disturbed by other load

    def peak_at_clock(self, mhz: float) -> float | None:
        """The peak at another SM clock (peak scales with clock), e.g. the one NVML saw in the run."""
        return self.peak_flops * mhz / self.clock_mhz if self.peak_flops and self.clock_mhz and mhz else None

    @property
    def roof_flops(self) -> float:
        return self.attainable_flops or self.peak_flops

    @property
    def roof_bandwidth(self) -> float:
        return self.attainable_bandwidth or self.peak_bandwidth

    @property
    def ridge_point(self) -> float:
        """FLOPs per byte where the roofline turns from memory-bound to compute-bound."""
        return self.roof_flops / self.roof_bandwidth

    def min_time(self, flops: float, nbytes: float) -> float:
        """The roofline's lower bound on time: max(FLOPs / roof, bytes / bandwidth)."""
        return max(flops / self.roof_flops, nbytes / self.roof_bandwidth)

    def bound(self, flops: float, nbytes: float) -> str:
        if not nbytes:
            return "compute"
        return "compute" if flops / nbytes >= self.ridge_point else "memory"

    def to_dict(self) -> dict:
        return {**self.__dict__, "notes": list(self.notes), "roof_flops": self.roof_flops,
                "roof_bandwidth": self.roof_bandwidth, "ridge_point": self.ridge_point}


def ceiling_for(device: torch.device, dtype: str = "fp32", threads: int | None = None) -> Ceiling | None:
    """GPU: the spec table's datasheet peak (tensor cores for fp16/bf16/tf32, CUDA cores for
    fp32) with the boost-clock formula beside it; a GPU not in the table gets ceilings derived
    from NVML, or None without NVML. CPU: the ISA peak and the measured roofs."""
    name = precision(dtype).name
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        try:
            spec = find_gpu(gpu)
        except UnknownGpuError:
            return _derived_for_device(device, name)
        datasheet, boost = peak(spec, name, clock="datasheet"), peak(spec, name, clock="boost")
        return Ceiling(str(device), name, datasheet.value, peak_bandwidth(spec),
                       f"{spec.gpu} datasheet dense figure ({datasheet.formula}); bandwidth {spec.bus_bits}-bit x "
                       f"{spec.mem_gbps_per_pin:g} Gbps", boost_flops=boost.value, boost_formula=boost.formula,
                       clock_mhz=datasheet.clock_mhz)
    if device.type == "cpu":
        measured = measure_cpu_ceilings(threads, name)
        info = replace(cpu_info(), threads_used=measured.threads)
        theoretical = info.peak_flops(name)  # None: no clock, or an ISA the table does not cover
        notes = (f"the roofs' measurement was disturbed: {measured.note}",) if measured.disturbed else ()
        if theoretical is None:
            notes += (f"no theoretical {name} peak for this CPU ({info.peak_formula(name)}): utilisation is "
                      f"left empty; the roofline uses the measured roofs",)
        return Ceiling("cpu", name, theoretical, measured.copy_bytes_per_s,
                       f"{info.peak_formula(name)}, clock: {info.frequency_source}; roofs measured with "
                       f"{measured.threads} thread{'s' if measured.threads != 1 else ''}: median "
                       f"{measured.matmul_dtype} {measured.matmul_n}^3 matmul "
                       f"({measured.matmul_kernel}, spread {measured.matmul_spread:.0%}) and a "
                       f"{measured.copy_bytes_per_s / 1e9:.0f} GB/s copy, read + write (spread "
                       f"{measured.copy_spread:.0%})",
                       attainable_flops=min(measured.matmul_flops, theoretical or measured.matmul_flops),
                       attainable_bandwidth=measured.copy_bytes_per_s, notes=notes)
    return None


def derived_gpu_ceiling(device: str, dtype: str, name: str, sms: int, compute_capability: str,
                        readings: dict) -> Ceiling | None:
    """Ceilings for a GPU missing from the table, from NVML's max SM and memory clocks and bus
    width, its SM count and the per-SM rates of its compute capability; None if any is unknown."""
    clock, mem_clock = readings.get("sm_clock_max_mhz"), readings.get("memory_clock_max_mhz")
    bus = readings.get("memory_bus_width_bits")
    if not all(isinstance(v, (int, float)) and v > 0 for v in (clock, mem_clock, bus)):
        return None
    try:
        derived = derived_peak(name, sms, compute_capability, clock, dtype)
    except ValueError:
        return None
    return Ceiling(device, dtype, derived.value, derived_bandwidth(bus, mem_clock),
                   f"derived, {name} is not in configs/gpu_specs.csv: compute capability {compute_capability} "
                   f"rate, {derived.formula.replace('(given clock)', '(NVML max clock)')}; bandwidth "
                   f"{bus}-bit / 8 x {mem_clock:g} MHz x 2 (NVML max memory clock, double data rate)",
                   clock_mhz=clock)


def _derived_for_device(device: torch.device, dtype: str) -> Ceiling | None:
    nvml = load_nvml()
    if nvml is None:
        return None
    props = torch.cuda.get_device_properties(device)
    readings = gpu_readings(nvml, handle_for(nvml, device.index or 0))
    return derived_gpu_ceiling(str(device), dtype, props.name, props.multi_processor_count,
                               f"{props.major}.{props.minor}", readings)
