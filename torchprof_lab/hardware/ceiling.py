"""The ceilings a run is compared against: peak FLOP/s and bandwidth of the device it ran on."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cpu import cpu_info, measure_cpu_ceilings
from .peak import derived_bandwidth, derived_peak, peak, peak_bandwidth, peak_flops
from .specs import UnknownGpuError, find_gpu


@dataclass(frozen=True)
class Ceiling:
    """Peak compute and bandwidth, with where they come from."""

    device: str
    dtype: str
    peak_flops: float
    peak_bandwidth: float
    source: str
    estimate_flops: float | None = None  # CPU: SIMD-width estimate; GPU: peak at the datasheet clock
    clock_mhz: float | None = None  # the clock peak_flops assumes (GPU), to rescale to the clock seen

    def peak_at_clock(self, mhz: float) -> float | None:
        """The peak at another SM clock (peak scales with clock), e.g. the one NVML saw in the run."""
        return self.peak_flops * mhz / self.clock_mhz if self.clock_mhz and mhz else None

    @property
    def ridge_point(self) -> float:
        """FLOPs per byte where the roofline turns from memory-bound to compute-bound."""
        return self.peak_flops / self.peak_bandwidth

    def min_time(self, flops: float, nbytes: float) -> float:
        """The roofline's lower bound on time: max(FLOPs / peak, bytes / bandwidth)."""
        return max(flops / self.peak_flops, nbytes / self.peak_bandwidth)

    def bound(self, flops: float, nbytes: float) -> str:
        if not nbytes:
            return "compute"
        return "compute" if flops / nbytes >= self.ridge_point else "memory"

    def to_dict(self) -> dict:
        return {**self.__dict__, "ridge_point": self.ridge_point}


def ceiling_for(device: torch.device, dtype: str = "fp32", threads: int | None = None) -> Ceiling | None:
    """GPU: the spec table (tensor-core peak for fp16/bf16/tf32, CUDA cores for fp32) at the boost
    clock; CPU: measured ceilings (large matmul, large copy). A GPU not in the table gets derived
    ceilings from NVML (see derived_gpu_ceiling), or None without NVML."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        try:
            spec = find_gpu(name)
        except UnknownGpuError:
            return _derived_for_device(device, dtype)
        at_boost = peak(spec, dtype)
        return Ceiling(str(device), dtype, at_boost.value, peak_bandwidth(spec),
                       f"{spec.gpu} spec table, {at_boost.formula}; bandwidth {spec.bus_bits}-bit x "
                       f"{spec.mem_gbps_per_pin:g} Gbps", peak_flops(spec, dtype, clock="datasheet"),
                       clock_mhz=at_boost.clock_mhz)
    if device.type == "cpu":
        measured = measure_cpu_ceilings(threads)
        return Ceiling("cpu", dtype, measured.matmul_flops, measured.copy_bytes_per_s,
                       f"measured on this CPU with {measured.threads} threads: median fp32 1024x1024 matmul "
                       f"and 128 MiB copy (read + write)", cpu_info().estimated_peak_flops)
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
    from .nvml import gpu_readings, handle_for, load_nvml

    nvml = load_nvml()
    if nvml is None:
        return None
    props = torch.cuda.get_device_properties(device)
    readings = gpu_readings(nvml, handle_for(nvml, device.index or 0))
    return derived_gpu_ceiling(str(device), dtype, props.name, props.multi_processor_count,
                               f"{props.major}.{props.minor}", readings)
