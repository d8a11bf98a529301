"""NVML parsing with a fake pynvml, the CPU description and its measured ceilings (for real)."""

import math

import pytest

from fake_pynvml import FakeNvml, sampled_once
from torchprof_lab.hardware.cpu import cpu_info
from torchprof_lab.hardware.cpu_roofs import measure_cpu_ceilings
from torchprof_lab.hardware.ceiling import derived_gpu_ceiling
from torchprof_lab.hardware.info import device_info, gpu_peaks
from torchprof_lab.hardware.peak import peak_bandwidth, peak_flops
from torchprof_lab.hardware.specs import find_gpu
from torchprof_lab.hardware.nvml import NOT_AVAILABLE, PowerSampler, gpu_readings


def test_nvml_readings_parse_every_field():
    nvml = FakeNvml()
    f = gpu_readings(nvml, nvml.nvmlDeviceGetHandleByIndex(0))
    assert f["name"] == "NVIDIA A100-SXM4-40GB"  # bytes from old bindings decoded
    assert f["cuda_driver_version"] == "12.4" and f["compute_capability"] == "8.0"
    assert (f["sm_clock_max_mhz"], f["memory_bus_width_bits"]) == (1410, 5120)
    assert f["power_limit_w"] == 400.0 and f["temperature_c"] == 61
    assert f["throttle_reasons"] == ["SW power cap"] and f["mig_mode"] == "disabled"
    assert f["memory_total_bytes"] == 40 * 2**30 and f["utilisation_gpu_pct"] == 97


def test_unsupported_fields_read_not_available():
    nvml = FakeNvml(unsupported={"bus", "power", "util", "mig", "clock"})
    f = gpu_readings(nvml, nvml.nvmlDeviceGetHandleByIndex(0))
    for key in ("memory_bus_width_bits", "power_w", "utilisation_gpu_pct", "mig_mode", "sm_clock_mhz"):
        assert f[key] == NOT_AVAILABLE, key
    assert f["sm_clock_max_mhz"] == 1410


def test_peaks_from_table_or_derived():
    known = gpu_peaks({"name": "NVIDIA A100-SXM4-40GB"})
    assert known["peak_fp16_tensor_flops"] == pytest.approx(312e12)  # the datasheet figure
    assert known["peak_fp16_tensor_flops_boost_clock"] == 108 * 1024 * 2 * 1410e6
    assert "A100-SXM4-40GB" in known["peak_source"]
    derived = gpu_peaks({"name": "NVIDIA A800-SXM4-80GB", "sm_count": 108, "compute_capability": "8.0",
                         "sm_clock_max_mhz": 1410})
    assert derived["peak_source"].startswith("derived") and derived["peak_fp32_flops"] == 6912 * 2 * 1410e6
    assert "peak_bandwidth_bytes_per_s" not in derived  # no memory clock or bus width read
    assert "unknown" in gpu_peaks({"name": "Mystery GPU"})["peak_source"]


@pytest.mark.parametrize("energy", [True, False])
def test_power_sampler_energy_counter_or_sampled_power(energy):
    nvml = FakeNvml(energy=energy)
    with PowerSampler(nvml, ("handle", 0), interval=0.01) as sampler:
        sampled_once(sampler)  # the thread's reading; the exit takes one more
    s = sampler.summary()
    assert s.samples >= 2 and 250 <= s.mean_w <= 300 and s.peak_w <= 300
    assert s.max_temperature_c == 61 and s.min_sm_clock_mhz == 1410
    assert s.throttled == ("SW power cap",)
    if energy:
        assert s.energy_source == "energy counter" and s.joules == pytest.approx(5.0)
    else:
        assert s.energy_source.startswith("sampled") and s.joules == pytest.approx(s.mean_w * s.seconds)


def test_cpu_description():
    info = cpu_info()
    assert info.model and info.logical_cpus >= 1 and 1 <= info.threads_used
    assert info.fp32_flops_per_cycle in (8, 16, 32, 64)
    if info.max_mhz:
        assert info.estimated_peak_flops > 1e9
    d = device_info("cpu")
    assert d.kind == "cpu" and "simd" in d.fields and "estimated_peak_flops" in str(d)


def test_cpu_ceilings_measured_for_real_and_stable():
    # Two runs agree within 30%. Most pairs here agree within 3%, but this 2-vCPU VM has a slow
    # state that can take a whole half-second window: 1 pair in 12 read 1.40x (186 vs 133 GFLOP/s).
    # So a third run may settle it: some two of three must agree. Noise spoils one window; a
    # calibrator that does not reproduce itself would fail every pair.
    runs = [measure_cpu_ceilings.__wrapped__(budget=0.5) for _ in range(2)]
    for c in runs:
        assert math.isfinite(c.matmul_flops) and c.matmul_flops > 1e9
        assert math.isfinite(c.copy_bytes_per_s) and c.copy_bytes_per_s > 1e8

    def agreeing_pair(key):
        values = [getattr(c, key) for c in runs]
        return any(0.7 < a / b < 1.3 for i, a in enumerate(values) for b in values[i + 1:])

    if not (agreeing_pair("matmul_flops") and agreeing_pair("copy_bytes_per_s")):
        runs.append(measure_cpu_ceilings.__wrapped__(budget=0.5))
    # Load that comes and goes (a 2-thread matmul falls 100x when another process wants a core)
    # can spoil every run; then the measurement must have said so: at most one run not disturbed.
    steady = [c for c in runs if not c.disturbed]
    assert (agreeing_pair("matmul_flops") and agreeing_pair("copy_bytes_per_s")) or len(steady) <= 1, runs
    estimate = cpu_info().estimated_peak_flops
    if estimate:  # a measurement cannot beat the hardware by much
        assert max(c.matmul_flops for c in runs) < 1.2 * estimate


def test_derived_ceiling_from_nvml_reproduces_the_table_for_a_gpu_it_has():
    """The derivation for GPUs missing from the table, checked where the answer is known: the
    fake NVML's A100-SXM4-40GB readings give the table's FP32, FP16-tensor and bandwidth peaks."""
    readings = gpu_readings(FakeNvml(), ("handle", 0))
    a100 = find_gpu("A100 SXM4 40GB")
    for dtype in ("fp32", "fp16", "tf32"):
        ceiling = derived_gpu_ceiling("cuda:0", dtype, "NVIDIA A100-SXM4-40GB", 108, "8.0", readings)
        assert ceiling.peak_flops == pytest.approx(peak_flops(a100, dtype, clock="boost"), rel=1e-12)
        assert ceiling.peak_bandwidth == pytest.approx(peak_bandwidth(a100), rel=0.001)  # 1555.2 GB/s
        assert ceiling.source.startswith("derived") and "NVML max clock" in ceiling.source
    assert derived_gpu_ceiling("cuda:0", "fp32", "NVIDIA A100-SXM4-40GB", 108, "8.0",
                               gpu_readings(FakeNvml(unsupported={"bus"}), ("handle", 0))) is None
    assert derived_gpu_ceiling("cuda:0", "fp32", "Future GPU", 100, "99.0", readings) is None
    fields = {**readings, "name": "NVIDIA A800-SXM4-80GB", "sm_count": 108, "compute_capability": "8.0"}
    assert gpu_peaks(fields)["peak_bandwidth_bytes_per_s"] == pytest.approx(1555.2e9)
