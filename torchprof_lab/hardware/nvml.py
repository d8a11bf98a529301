"""NVML readings (package nvidia-ml-py, module pynvml). Every field a GPU does not support reads
as NOT_AVAILABLE instead of failing (NVIDIA NVML API reference: docs.nvidia.com/deploy/nvml-api)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

NOT_AVAILABLE = "n/a"

# the clock-event (throttle) reason bits that pynvml defines
THROTTLE_REASONS = {0x1: "idle", 0x2: "application clocks", 0x4: "SW power cap", 0x8: "HW slowdown",
                    0x10: "sync boost", 0x20: "SW thermal", 0x40: "HW thermal", 0x80: "power brake",
                    0x100: "display clock setting", 0x200: "board limit", 0x400: "reliability"}
# reasons that mean the clock was held down while working (idle and clock settings are not)
SLOWDOWN_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80 | 0x200 | 0x400


def load_nvml():
    """The pynvml module, initialised; None where NVML or a driver is missing (CI)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded ...
        return None
    return pynvml


def _read(call, *args, scale=None):
    try:
        value = call(*args)
    except Exception:  # noqa: BLE001 - NotSupported, FunctionNotFound, NoPermission ...
        return NOT_AVAILABLE
    if isinstance(value, bytes):  # old bindings return bytes
        value = value.decode()
    return value * scale if scale is not None and isinstance(value, (int, float)) else value


def throttle_names(bits) -> list[str] | str:
    if not isinstance(bits, int):
        return NOT_AVAILABLE
    return [name for bit, name in THROTTLE_REASONS.items() if bits & bit] or ["none"]


def handle_for(nvml, index: int = 0):
    """NVML's handle for CUDA device ``index``: by the UUID torch reports for it (NVML enumerates
    in PCI order, CUDA may not), else by index."""
    uuid = _cuda_uuid(index)
    if uuid:
        try:
            return nvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:  # noqa: BLE001
            pass
    return nvml.nvmlDeviceGetHandleByIndex(index)


def _cuda_uuid(index: int) -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"GPU-{uuid}" if uuid else None


def gpu_readings(nvml, handle) -> dict:
    """Every NVML fact the profiler reports for one GPU; unsupported ones are NOT_AVAILABLE."""
    n = nvml
    sm, mem = n.NVML_CLOCK_SM, n.NVML_CLOCK_MEM
    memory = _read(n.nvmlDeviceGetMemoryInfo, handle)
    util = _read(n.nvmlDeviceGetUtilizationRates, handle)
    cc = _read(n.nvmlDeviceGetCudaComputeCapability, handle)
    cuda = _read(n.nvmlSystemGetCudaDriverVersion_v2) if hasattr(n, "nvmlSystemGetCudaDriverVersion_v2") \
        else NOT_AVAILABLE
    reasons_call = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        getattr(n, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
    mig = _read(n.nvmlDeviceGetMigMode, handle)
    return {
        "name": _read(n.nvmlDeviceGetName, handle),
        "uuid": _read(n.nvmlDeviceGetUUID, handle),
        "driver_version": _read(n.nvmlSystemGetDriverVersion),
        "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else cuda,
        "compute_capability": f"{cc[0]}.{cc[1]}" if isinstance(cc, tuple) else cc,
        "sm_clock_mhz": _read(n.nvmlDeviceGetClockInfo, handle, sm),
        "sm_clock_max_mhz": _read(n.nvmlDeviceGetMaxClockInfo, handle, sm),
        "memory_clock_mhz": _read(n.nvmlDeviceGetClockInfo, handle, mem),
        "memory_clock_max_mhz": _read(n.nvmlDeviceGetMaxClockInfo, handle, mem),
        "memory_bus_width_bits": _read(n.nvmlDeviceGetMemoryBusWidth, handle)
        if hasattr(n, "nvmlDeviceGetMemoryBusWidth") else NOT_AVAILABLE,
        "memory_total_bytes": memory.total if memory != NOT_AVAILABLE else NOT_AVAILABLE,
        "memory_used_bytes": memory.used if memory != NOT_AVAILABLE else NOT_AVAILABLE,
        "memory_free_bytes": memory.free if memory != NOT_AVAILABLE else NOT_AVAILABLE,
        "power_w": _read(n.nvmlDeviceGetPowerUsage, handle, scale=1e-3),
        "power_limit_w": _read(n.nvmlDeviceGetEnforcedPowerLimit, handle, scale=1e-3),
        "temperature_c": _read(n.nvmlDeviceGetTemperature, handle, n.NVML_TEMPERATURE_GPU),
        "utilisation_gpu_pct": util.gpu if util != NOT_AVAILABLE else NOT_AVAILABLE,
        "utilisation_memory_pct": util.memory if util != NOT_AVAILABLE else NOT_AVAILABLE,
        "throttle_reasons": throttle_names(_read(reasons_call, handle) if reasons_call else NOT_AVAILABLE),
        "pcie_generation": _read(n.nvmlDeviceGetCurrPcieLinkGeneration, handle),
        "pcie_width": _read(n.nvmlDeviceGetCurrPcieLinkWidth, handle),
        "pcie_max_generation": _read(n.nvmlDeviceGetMaxPcieLinkGeneration, handle),
        "pcie_max_width": _read(n.nvmlDeviceGetMaxPcieLinkWidth, handle),
        "mig_mode": ("enabled" if mig[0] else "disabled") if isinstance(mig, (tuple, list)) else mig,
    }


@dataclass(frozen=True)
class PowerSample:
    """One reading of the sampler, stamped with time.monotonic() so it can be placed on a timeline
    (the Chrome trace's counter tracks); None where NVML could not read it."""

    at: float  # time.monotonic() seconds
    watts: float | None
    sm_clock_mhz: float | None
    temperature_c: float | None


@dataclass(frozen=True)
class PowerSummary:
    """Power, clocks and temperature over a timed window (a value, made once)."""

    seconds: float
    joules: float | None
    energy_source: str  # "energy counter" or "sampled power (approximate)"
    mean_w: float | None
    peak_w: float | None
    min_sm_clock_mhz: float | None
    mean_sm_clock_mhz: float | None
    max_temperature_c: float | None
    throttled: tuple[str, ...] = ()
    samples: int = 0

    def to_dict(self) -> dict:
        return {**self.__dict__, "throttled": list(self.throttled)}


class PowerSampler:
    """Samples power, SM clock, temperature and throttle reasons in a background thread;
    uses the total-energy counter for joules where the GPU has one (Volta and later)."""

    def __init__(self, nvml, handle, interval: float = 0.05):
        self.nvml, self.handle, self.interval = nvml, handle, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watts: list[float] = []
        self._clocks: list[float] = []
        self._temps: list[float] = []
        self._reasons = 0
        self._timeline: list[PowerSample] = []

    def _energy_mj(self):
        value = _read(self.nvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        return value if isinstance(value, (int, float)) else None

    def _sample(self) -> None:
        n, h = self.nvml, self.handle
        watts = _read(n.nvmlDeviceGetPowerUsage, h, scale=1e-3)
        clock = _read(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM)
        temp = _read(n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU)
        call = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            getattr(n, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        reasons = _read(call, h) if call else NOT_AVAILABLE
        for value, bucket in ((watts, self._watts), (clock, self._clocks), (temp, self._temps)):
            if isinstance(value, (int, float)):
                bucket.append(float(value))
        if isinstance(reasons, int):
            self._reasons |= reasons
        self._timeline.append(PowerSample(time.monotonic(), *(float(v) if isinstance(v, (int, float)) else None
                                                              for v in (watts, clock, temp))))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "PowerSampler":
        self._started = time.monotonic()
        self._energy_start = self._energy_mj()
        self._thread = threading.Thread(target=self._run, name="torchprof_lab-nvml", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.seconds = time.monotonic() - self._started
        self._energy_end = self._energy_mj()

    def timeline(self) -> tuple[PowerSample, ...]:
        """Every reading in time order, each with its time.monotonic() stamp."""
        return tuple(self._timeline)

    def summary(self) -> PowerSummary:
        watts = self._watts
        if self._energy_start is not None and self._energy_end is not None and self._energy_end > self._energy_start:
            joules, source = (self._energy_end - self._energy_start) / 1e3, "energy counter"
        elif watts:
            joules, source = sum(watts) / len(watts) * self.seconds, "sampled power (approximate)"
        else:
            joules, source = None, NOT_AVAILABLE
        slowdown = self._reasons & SLOWDOWN_MASK
        return PowerSummary(
            seconds=self.seconds, joules=joules, energy_source=source,
            mean_w=sum(watts) / len(watts) if watts else None, peak_w=max(watts) if watts else None,
            min_sm_clock_mhz=min(self._clocks) if self._clocks else None,
            mean_sm_clock_mhz=sum(self._clocks) / len(self._clocks) if self._clocks else None,
            max_temperature_c=max(self._temps) if self._temps else None,
            throttled=tuple(name for bit, name in THROTTLE_REASONS.items() if slowdown & bit), samples=len(watts),
        )
