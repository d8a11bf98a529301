"""A fake pynvml for unit-testing parsing on CPU machines: an A100 with a few unsupported calls."""

import time
from collections import namedtuple

NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0
Memory = namedtuple("Memory", "total used free")
Utilisation = namedtuple("Utilisation", "gpu memory")


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class FakeNvml:
    def __init__(self, unsupported=(), energy=True, name=b"NVIDIA A100-SXM4-40GB"):
        self.unsupported, self.energy, self.name = set(unsupported), energy, name
        self.power_mw = [250_000, 300_000, 280_000]
        self.calls = 0
        self.energy_mj = 1_000_000
        for key, value in globals().items():
            if key.startswith("NVML_"):
                setattr(self, key, value)

    def _check(self, call):
        if call in self.unsupported:
            raise NVMLError_NotSupported(call)

    def nvmlInit(self): pass
    def nvmlDeviceGetHandleByIndex(self, i): return ("handle", i)
    def nvmlDeviceGetHandleByUUID(self, uuid): raise NVMLError("not found")
    def nvmlDeviceGetName(self, h): return self.name
    def nvmlDeviceGetUUID(self, h): return "GPU-1234"
    def nvmlSystemGetDriverVersion(self): return "550.54"
    def nvmlSystemGetCudaDriverVersion_v2(self): return 12040
    def nvmlDeviceGetCudaComputeCapability(self, h): return (8, 0)
    def nvmlDeviceGetClockInfo(self, h, kind):
        self._check("clock")
        return 1410 if kind == NVML_CLOCK_SM else 1215
    def nvmlDeviceGetMaxClockInfo(self, h, kind): return 1410 if kind == NVML_CLOCK_SM else 1215
    def nvmlDeviceGetMemoryBusWidth(self, h):
        self._check("bus")
        return 5120
    def nvmlDeviceGetMemoryInfo(self, h): return Memory(40 * 2**30, 2**30, 39 * 2**30)
    def nvmlDeviceGetPowerUsage(self, h):
        self._check("power")
        self.calls += 1
        return self.power_mw[self.calls % len(self.power_mw)]
    def nvmlDeviceGetEnforcedPowerLimit(self, h): return 400_000
    def nvmlDeviceGetTemperature(self, h, sensor): return 61
    def nvmlDeviceGetUtilizationRates(self, h):
        self._check("util")
        return Utilisation(97, 40)
    def nvmlDeviceGetCurrentClocksEventReasons(self, h): return 0x4  # SW power cap
    def nvmlDeviceGetCurrPcieLinkGeneration(self, h): return 4
    def nvmlDeviceGetCurrPcieLinkWidth(self, h): return 16
    def nvmlDeviceGetMaxPcieLinkGeneration(self, h): return 4
    def nvmlDeviceGetMaxPcieLinkWidth(self, h): return 16
    def nvmlDeviceGetMigMode(self, h):
        self._check("mig")
        return (0, 0)
    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy:
            raise NVMLError_NotSupported("energy")
        self.energy_mj += 5_000
        return self.energy_mj


def sampled_once(sampler, seconds: float = 10.0) -> None:
    """Until a PowerSampler's thread has taken a reading (a sleep alone may end before a loaded
    machine schedules the thread), then 20 ms more for a few readings."""
    deadline = time.monotonic() + seconds
    while not sampler.timeline() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.02)
