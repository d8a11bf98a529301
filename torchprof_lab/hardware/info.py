"""device_info(): the facts of the device a profile runs on, GPU through NVML or the CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model_state import check_device
from ..report import render
from .cpu import cpu_info
from .nvml import NOT_AVAILABLE, gpu_readings, handle_for, load_nvml
from .peak import derived_bandwidth, derived_peak, peak_bandwidth, peak_flops
from .specs import UnknownGpuError, find_gpu
from ..values import Value


@dataclass(frozen=True)
class DeviceInfo(render.Rendered, Value):
    kind: str  # "gpu" or "cpu"
    fields: dict

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.fields}


def device_info(device=None, nvml=None) -> DeviceInfo:
    """NVML readings for a CUDA device (CUDA's own properties where NVML is missing); the CPU
    otherwise: model, cores, threads, SIMD flags, max frequency and estimated fp32 peak."""
    device = check_device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if device.type != "cuda":
        return DeviceInfo("cpu", cpu_info().to_dict())
    return DeviceInfo("gpu", gpu_fields(device.index or 0, nvml))


def gpu_fields(index: int, nvml=None) -> dict:
    props = torch.cuda.get_device_properties(index) if torch.cuda.is_available() else None
    nvml = nvml or load_nvml()
    fields: dict = {}
    if nvml is not None:
        fields.update(gpu_readings(nvml, handle_for(nvml, index)))
    else:
        fields["nvml"] = "not available (no pynvml or no driver): power, clocks and temperature unknown"
    if props is not None:
        fields.setdefault("name", props.name)
        fields["sm_count"] = props.multi_processor_count
        fields.setdefault("compute_capability", f"{props.major}.{props.minor}")
        fields.setdefault("memory_total_bytes", props.total_memory)
    fields.update(gpu_peaks(fields))
    return fields


def gpu_peaks(fields: dict) -> dict:
    """Peaks from the spec table by name, or derived from SMs, compute capability and max clock."""
    name = fields.get("name", NOT_AVAILABLE)
    try:
        spec = find_gpu(str(name))
    except UnknownGpuError:
        clock, sms, cc = fields.get("sm_clock_max_mhz"), fields.get("sm_count"), fields.get("compute_capability")
        if not all(isinstance(v, (int, float)) for v in (clock, sms)) or not isinstance(cc, str):
            return {"peak_source": "unknown GPU: not in the table and no clock/SM count to derive from"}
        try:
            fp32 = derived_peak(str(name), sms, cc, clock, "fp32")
            tc = derived_peak(str(name), sms, cc, clock, "fp16")
        except ValueError as exc:
            return {"peak_source": f"unknown GPU: {exc}"}
        derived = {"peak_source": "derived (not in table): SMs x compute-capability rate x NVML max clock",
                   "peak_fp32_flops": fp32.value, "peak_fp16_tensor_flops": tc.value}
        bus, mem = fields.get("memory_bus_width_bits"), fields.get("memory_clock_max_mhz")
        if all(isinstance(v, (int, float)) and v > 0 for v in (bus, mem)):
            derived["peak_bandwidth_bytes_per_s"] = derived_bandwidth(bus, mem)
        return derived
    return {"peak_source": f"configs/gpu_specs.csv row {spec.gpu} ({'|'.join(spec.sources)})",
            "peak_fp32_flops": peak_flops(spec, "fp32"),
            "peak_fp16_tensor_flops": peak_flops(spec, "fp16"),
            "peak_fp16_tensor_flops_boost_clock": peak_flops(spec, "fp16", clock="boost"),
            "peak_bandwidth_bytes_per_s": peak_bandwidth(spec)}
