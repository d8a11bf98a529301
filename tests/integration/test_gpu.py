"""The real GPU paths: CUDA events, NVML readings and power, the peak table against a measured
matmul, and issue 12's token-model paths (generation timed with CUDA events, a bf16 profile of a
tiny Llama with tokens/s and PaLM MFU). Skipped where torch sees no CUDA device (CI, this
project's CPU machines); a GPU machine runs them with the rest of the suite
(scripts/gpu_check.sh records the CLI's outputs beside them). The memory predictor against
torch.cuda.max_memory_allocated is tests/integration/test_gpu_memory.py's.

The token-model checks are functions of the device, so they can be tried on the CPU without a
GPU (``_generation_check("cpu")``, ``_llama_bf16_profile_check("cpu")``); only the CUDA tests run here.
"""

import pytest
import torch
import torchvision
from torch import nn

import torchprof_lab
from torchprof_lab.hardware.ceiling import ceiling_for
from torchprof_lab.hardware.nvml import load_nvml
from torchprof_lab.llm import palm_flops_per_token

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


# issue 12 on the GPU: generation and a bf16 token-model profile ----------------------------------

PROMPT, NEW = 12, 6  # as tests/integration/test_generation.py


def _clock_name(device: str) -> str:
    return "torch.cuda.Event" if device.startswith("cuda") else "time.perf_counter_ns"


def _generation_check(device: str) -> None:
    pytest.importorskip("transformers")
    import generation_models  # tests/ is on sys.path (conftest.py)

    model = generation_models.gpt2_tiny().to(device)  # 2 layers, 2 heads of 32, vocabulary 128
    report = torchprof_lab.benchmark_generation(model, prompt_len=PROMPT, new_tokens=NEW, batch_sizes=[1, 4],
                                                min_time=0.05, min_runs=3, warmup=2, warmup_time=0.0)
    assert report.timer.startswith(_clock_name(device)) and report.device.startswith(device)
    assert report.to_dict()["clock"] == report.timer
    for row in report.rows:
        batch = row.batch_size
        # K and V of 2 layers x batch x 2 heads x (prompt + new - 1) positions x 32, fp32
        assert row.kv_cache_bytes == 2 * 2 * batch * 2 * (PROMPT + NEW - 1) * 32 * 4
        assert row.kv_cache_positions == PROMPT + NEW - 1 and row.decode_steps == NEW - 1
        assert row.decode.n == row.generations * (NEW - 1) and row.generations >= 3
        assert 0 < row.prefill.min <= row.prefill.p50 and 0 < row.decode.min <= row.decode.p50
        assert row.tokens_per_s == batch / row.decode.p50
        ids = torch.randint(0, 128, (batch, PROMPT), generator=torch.Generator().manual_seed(batch)).to(device)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW,
                                 min_new_tokens=NEW, pad_token_id=0)
        assert [list(s) for s in row.output_ids] == out[:, PROMPT:].tolist()
        if report.ceiling is not None and report.ceiling.peak_flops:
            assert 0 < row.mfu_prefill < 1
        if report.ceiling is not None and report.ceiling.peak_bandwidth:
            assert 0 < row.mbu_decode < 1
    assert all(p.device.type == torch.device(device).type for p in model.parameters())


def _llama_bf16_profile_check(device: str, train: bool = True) -> None:
    pytest.importorskip("transformers")
    import generation_models

    model = generation_models.llama_tiny().to(device)  # 4 heads sharing 2 KV heads of 16
    seqs, batches = [32, 64], [1, 4]
    report = torchprof_lab.profile_tokens(model, seqs, batches, config=model.config, dtype="bf16", train=train,
                                          min_time=0.05, min_runs=3, warmup=1, warmup_time=0.0)
    timing = report.timing
    assert report.dtype == "bf16" and timing.clock.startswith(_clock_name(device))
    assert [(r.batch_size, r.tokens_per_sample) for r in timing.rows] == [(b, s) for s in seqs for b in batches]
    for row in timing.rows:
        assert row.ok and row.tokens_per_s > 0
        assert row.tokens_per_s == pytest.approx(row.batch_size / row.latency.p50 * row.tokens_per_sample)
        if timing.ceiling is not None and timing.ceiling.peak_flops:
            # PaLM MFU: model FLOPs per token (at this row's sequence length) x tokens/s over the bf16 peak
            palm = palm_flops_per_token(model.config, row.tokens_per_sample, report.params_without_embeddings,
                                        train=train)
            assert row.model_flops_utilisation == pytest.approx(palm * row.tokens_per_s / timing.ceiling.peak_flops)
            assert 0 < row.model_flops_utilisation < 1
    # the report's own figure is the first sequence length's
    assert report.model_flops_per_token == palm_flops_per_token(model.config, seqs[0],
                                                                report.params_without_embeddings, train=train)
    assert report.transformer_shape == {"layers": 2, "heads": 4, "head_dim": 16, "hidden": 64, "vocab": 128,
                                        "kv_heads": 2}
    assert all(p.dtype == torch.float32 and p.grad is None for p in model.parameters())  # left as it was


def test_generation_on_cuda_times_with_cuda_events_and_matches_generate():
    _generation_check("cuda")


@pytest.mark.skipif(torch.cuda.is_available() and not torch.cuda.is_bf16_supported(), reason="needs bf16")
def test_bf16_profile_tokens_of_a_tiny_llama_on_cuda_has_tokens_per_s_and_palm_mfu():
    _llama_bf16_profile_check("cuda", train=True)
    _llama_bf16_profile_check("cuda", train=False)


def test_timing_rows_carry_the_measured_cuda_peak_beside_the_prediction():
    model = torchvision.models.resnet18().cuda()
    r = torchprof_lab.profile(model, (3, 128, 128), batch_sizes=[8], train=True, optimizer="sgd-momentum",
                              min_time=0.2, warmup=2, memory=True)
    row = r.timing.rows[0]
    assert row.max_memory_allocated is not None and row.max_memory_reserved >= row.max_memory_allocated
    # the prediction is for a CUDA target; the measured peak also holds cuBLAS/cuDNN workspaces
    assert r.memory.peak_bytes <= row.max_memory_allocated * 1.15
    assert row.max_memory_allocated <= r.memory.peak_bytes * 1.5
    assert "Max allocated" in str(r.timing)


def test_track_a_cuda_training_loop():
    """issue 13: track() times CUDA steps with events and reads the CUDA peak (and NVML energy)."""
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 256, device="cuda")
    with torchprof_lab.track(model, opt) as tracker:
        for _ in range(12):
            model(x).sum().backward()
            opt.step()
            opt.zero_grad()
    r = tracker.report()
    assert r.timer.startswith("torch.cuda.Event") and r.steps == 12 and r.summary.timed_steps == 11
    assert r.flops_per_step == torchprof_lab.count(model, (256,), 64, backward=True, device="meta").total_flops
    assert r.summary.samples_per_s > 0 and 0 < r.summary.mfu < 1
    params = sum(p.numel() * 4 for p in model.parameters())
    assert r.summary.peak_memory_bytes >= 2 * params  # weights and their gradients at least
    if load_nvml() is not None:
        assert r.summary.joules_per_step > 0 and r.summary.mean_power_w > 0


def test_trace_of_a_cuda_per_layer_pass_nests_and_has_nvml_counters():
    """issue 13: CUDA event offsets place the spans; NVML readings become counter tracks."""
    model = torchvision.models.resnet18().cuda()
    report = torchprof_lab.profile(model, (3, 224, 224), batch_sizes=[8], per_layer=True, min_time=0.5)
    trace = report.to_chrome_trace()
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "layer"]
    roots = [e for e in spans if e["args"]["depth"] == 0]
    assert roots and all(e["dur"] > 0 for e in spans)
    for root in roots:  # every layer span of a run lies inside its root
        inside = [e for e in spans if e["args"]["run"] == root["args"]["run"]]
        assert all(root["ts"] <= e["ts"] and e["ts"] + e["dur"] <= root["ts"] + root["dur"] + 1e-3 for e in inside)
    if load_nvml() is not None:
        counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
        assert any(e["name"] == "GPU power" and e["args"]["W"] > 0 for e in counters)
