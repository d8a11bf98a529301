"""The real GPU paths: CUDA events, NVML readings and power, the peak table against a measured
matmul. Skipped where torch sees no CUDA device (CI, this project's CPU machines); a GPU machine
runs them with the rest of the suite (scripts/gpu_check.sh records the CLI's outputs beside them).
"""

import pytest
import torch
import torchvision
from torch import nn

import torchprof_lab
from torchprof_lab.hardware.ceiling import ceiling_for
from torchprof_lab.hardware.nvml import load_nvml

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_count_on_cuda_matches_meta_and_leaves_the_model_on_its_device():
    model = torchvision.models.resnet18().cuda()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    on_gpu = torchprof_lab.count(model, (3, 224, 224), backward=True)
    on_meta = torchprof_lab.count(model, (3, 224, 224), backward=True, device="meta")
    assert on_gpu.device.startswith("cuda") and on_gpu.macs == on_meta.macs
    assert on_gpu.backward_flops == on_meta.backward_flops
    assert all(p.device.type == "cuda" and p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_benchmark_times_with_cuda_events_and_reads_power():
    model = torchvision.models.resnet18().cuda()
    report = torchprof_lab.benchmark(model, (3, 224, 224), [1, 32], min_time=0.5, progress=False)
    assert report.clock.startswith("torch.cuda.Event")
    for row in report.rows:
        lat = row.latency
        assert row.ok and 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
        assert row.throughput_samples_per_s > 0
    if load_nvml() is not None:
        row = report.rows[1]
        power = row.power
        assert power is not None and power.samples > 0 and power.mean_w > 0 and power.joules > 0
        assert power.mean_sm_clock_mhz > 0 and row.joules_per_sample > 0


def test_device_info_reads_nvml_for_this_gpu():
    if load_nvml() is None:
        pytest.skip("no NVML on this GPU machine")
    info = torchprof_lab.device_info("cuda").to_dict()
    props = torch.cuda.get_device_properties(0)
    assert info["kind"] == "gpu" and info["name"] == props.name and info["sm_count"] == props.multi_processor_count
    assert info["compute_capability"] == f"{props.major}.{props.minor}"
    assert isinstance(info["sm_clock_max_mhz"], int) and info["sm_clock_max_mhz"] > 0
    assert isinstance(info["power_limit_w"], float) and info["power_limit_w"] > 0


@pytest.mark.parametrize("dtype,torch_dtype", [("fp16", torch.float16), ("fp32", torch.float32)])
def test_measured_matmul_stays_under_the_theoretical_peak(dtype, torch_dtype):
    """A peak the hardware beats is wrong; one it reaches only a sliver of is suspect too."""
    ceiling = ceiling_for(torch.device("cuda"), dtype)
    if ceiling is None:
        pytest.skip(f"{torch.cuda.get_device_name()} is not in the table and NVML is missing")
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch_dtype)
    b = torch.randn(n, n, device="cuda", dtype=torch_dtype)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 on CUDA cores, as the fp32 peak assumes
    try:
        for _ in range(3):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            a @ b
        end.record()
        end.synchronize()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    achieved = 10 * 2 * n ** 3 / (start.elapsed_time(end) / 1e3)
    assert 0.3 * ceiling.peak_flops < achieved <= 1.02 * ceiling.peak_flops, (achieved, ceiling.source)


def test_profile_on_cuda_reports_utilisation_and_roofline():
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 32 * 32, 10)).cuda()
    report = torchprof_lab.profile(model, (3, 32, 32), batch_sizes=[64], min_time=0.3, dtype="fp16")
    row = report.timing.rows[0]
    assert 0 < row.utilisation < 1
    assert row.bandwidth_utilisation > 0  # counted bytes assume no caching: may exceed 1 where L2 serves them
    assert all(layer.bound in ("memory", "compute") for layer in report.layers if layer.flops)
