"""The fake pynvml and our NVML calls against the real nvidia-ml-py bindings (no GPU needed).

The parsing tests run on a fake; these tests keep the fake honest: every call the profiler makes
exists in the installed pynvml with the arguments we pass, the constants match, and every
clock-event bit pynvml defines has a name in our table.
"""

import inspect
import re
from pathlib import Path

import pytest

from fake_pynvml import FakeNvml
from torchprof_lab.hardware import nvml as ours

pynvml = pytest.importorskip("pynvml")
HARDWARE = Path(ours.__file__).parent
SOURCES = [HARDWARE / "nvml.py", HARDWARE / "info.py", HARDWARE.parent / "timing" / "benchmark.py"]
# getattr fallbacks: each group needs one member in the installed bindings
ALTERNATIVES = [{"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"}]


def names_used() -> set[str]:
    text = "".join(path.read_text() for path in SOURCES)
    return set(re.findall(r"\b(nvml[A-Z]\w*|NVML_\w+)", text))


def test_every_call_and_constant_we_use_exists_in_pynvml():
    used = names_used()
    assert {"nvmlInit", "nvmlDeviceGetPowerUsage", "nvmlDeviceGetTotalEnergyConsumption"} <= used
    optional = set().union(*ALTERNATIVES)
    missing = sorted(n for n in used - optional if not hasattr(pynvml, n))
    assert missing == []
    for group in ALTERNATIVES:
        assert any(hasattr(pynvml, n) for n in group), group


def test_fake_mirrors_the_real_signatures_and_constants():
    fake = FakeNvml()
    calls = [n for n in dir(fake) if n.startswith("nvml")]
    assert len(calls) >= 20
    for name in calls:
        real = getattr(pynvml, name)
        real_params = [p for p in inspect.signature(real).parameters.values() if p.default is inspect.Parameter.empty]
        fake_params = list(inspect.signature(getattr(fake, name)).parameters.values())
        assert len(fake_params) == len(real_params), name
    for name in ("NVML_CLOCK_SM", "NVML_CLOCK_MEM", "NVML_TEMPERATURE_GPU"):
        assert getattr(fake, name) == getattr(pynvml, name)


def test_every_clock_event_bit_has_a_name():
    bits = {getattr(pynvml, n): n for n in dir(pynvml)
            if n.startswith(("nvmlClocksThrottleReason", "nvmlClocksEventReason"))
            and not n.endswith(("All", "None"))}
    assert bits and set(bits) <= set(ours.THROTTLE_REASONS), {hex(b): n for b, n in bits.items()}
    assert ours.SLOWDOWN_MASK & pynvml.nvmlClocksThrottleReasonHwThermalSlowdown
    assert not ours.SLOWDOWN_MASK & pynvml.nvmlClocksThrottleReasonGpuIdle


def test_without_a_driver_the_real_bindings_give_none_not_a_crash():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: tests/test_gpu.py covers the real path")
    assert ours.load_nvml() is None
