"""benchmark(): latency and throughput across batch sizes, inference or a training step."""

from __future__ import annotations

import gc
from contextlib import nullcontext
import platform
import time
from collections.abc import Sequence

import torch
from torch import nn

from ..hardware.cpu import cpu_model_name, usable_cpus
from ..hardware.nvml import PowerSampler, handle_for, load_nvml
from ..inputs import batch_of, call_args, check_shape, infer_batch, make_inputs
from ..model_state import model_lock, rng_restored
from ..torch_internals import tree_map
from .loop import clock_for, run_back_to_back, sample
from .options import TimingOptions
from .per_layer import time_layers
from .prepare import backend_settings, example_batch, make_step, plan, prepared_model, timed_device
from .result import BenchmarkReport, BenchmarkRow
from .stats import LatencyStats

SWEEP_LIMIT = 4096


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM, a Python MemoryError, or the CPU allocator's 'can't allocate memory'."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def benchmark(model: nn.Module, input_shape: Sequence[int] | None = None,
              batch_sizes: Sequence[int] | None = None, *, inputs=None, device=None,
              batch_size: int | None = None, options: TimingOptions | None = None, counts=None,
              name: str | None = None, **settings) -> BenchmarkReport:
    """Time ``model`` at each batch size: latency statistics and back-to-back throughput.

    ``options`` (a TimingOptions) or its fields as keywords (dtype, train, warmup, min_time,
    sweep, max_batch, per_layer ...) say how. sweep tries powers of two until one runs out of
    memory or sweep_budget seconds pass (batch sizes beside it are refused); an out-of-memory
    batch becomes an "OOM" row; max_batch then binary-searches the largest batch that fits, a
    lower bound (``max_batch_bounded`` False) when no larger size ran out. ``inputs`` replaces the random
    batch of ``input_shape``: fixed inputs are one row at the batch they carry (``batch_size=``
    when their shapes do not say), a callable ``batch -> inputs`` makes them for every size.
    ``counts`` (a callable (module, args, kwargs, batch) -> (FLOPs, bytes), called on the timed
    module with the timed batch, under the run's autocast) turns each row's latency into
    achieved FLOP/s and bytes/s. On a GPU with NVML, power, clocks and temperature are sampled
    while each row is timed.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    options = TimingOptions.of(options, **settings)
    home = timed_device(model, device)
    if inputs is not None and input_shape is not None:
        raise ValueError("give input_shape or inputs, not both")
    if inputs is None and input_shape is None:
        raise ValueError("input_shape is required (one sample's shape) unless inputs= is given")
    if input_shape is not None:
        input_shape = check_shape(input_shape)
    if inputs is not None and not callable(inputs):
        batch = batch_of(*call_args(inputs), batch_size)
        if options.sweep or options.max_batch or (batch_sizes is not None and list(batch_sizes) != [batch]):
            raise ValueError(f"the inputs given are one batch of {batch}: for batch_sizes, sweep or max_batch pass "
                             f"inputs= as a callable of the batch size (lambda b: ...)")
        batch_sizes = [batch]
    sizes = _batch_plan(batch_sizes, options.sweep)
    run = plan(model, options, home)
    clock = clock_for(home)
    power = _power_sampler_factory(home)
    rows: list[BenchmarkRow] = []
    layer_latency, layer_total, largest, layer_forwards, layer_power = {}, None, None, (), ()
    bounded = False
    # the model's lock for the whole run (a copy is taken while no other thread runs it) and the
    # global RNG as it was after (random batches, dropout in a training step)
    with model_lock(model), rng_restored(), backend_settings(run), prepared_model(model, run) as (work, plain):
        def measure(batch: int, quick: bool = False) -> BenchmarkRow:
            return _measure(work, plain, input_shape, inputs, batch, run, clock, quick, counts, power)

        started = time.monotonic()
        for batch in _progress(sizes, options.progress, "batch sizes"):
            row = measure(batch)
            rows.append(row)
            if not row.ok and options.sweep:
                break
            if options.sweep and time.monotonic() - started > options.sweep_budget:
                break
        if options.max_batch:
            largest, bounded = _largest_batch(rows, measure)
        if options.per_layer:
            first_ok = next((r.batch_size for r in rows if r.ok), None)
            if first_ok is not None:
                args, kwargs = _inputs(input_shape, inputs, first_ok, run)
                step = make_step(work, args, kwargs, run)
                with torch.inference_mode(not options.train), (power() if power else nullcontext()) as sampler:
                    layer_latency, layer_total, layer_forwards = time_layers(
                        work, step, clock, runs=max(options.min_runs, 5), batch_size=first_ok)
                layer_power = sampler.timeline() if sampler else ()
    threads_used = options.threads or torch.get_num_threads()
    return BenchmarkReport(
        model=name or type(model).__name__,
        input=str(tuple(input_shape)) if input_shape is not None else "given inputs",
        device=str(home), dtype=run.precision.name, mode="train" if options.train else "inference",
        clock=clock.name, settings=_settings(options), environment=environment(home, threads_used),
        rows=tuple(rows), max_batch=largest, max_batch_bounded=bounded, layer_latency=layer_latency, layer_latency_total=layer_total,
        layer_forwards=layer_forwards, layer_power=layer_power, autocast=run.autocast,
    )


def _settings(options: TimingOptions) -> dict:
    return {"warmup_runs": options.warmup, "warmup_time_s": options.warmup_time, "min_time_s": options.min_time,
            "min_runs": options.min_runs, "max_time_s": options.max_time, "channels_last": options.channels_last,
            "compile": options.compile,
            "optimizer": (options.optimizer if isinstance(options.optimizer, str) else
                          "given" if options.optimizer else "SGD(lr=1e-3)") if options.train else None,
            "inference_mode": not options.train}


def _batch_plan(batch_sizes, sweep: bool) -> list[int]:
    if sweep:
        if batch_sizes is not None:
            raise ValueError(f"sweep times powers of two from 1 up to {SWEEP_LIMIT}, so the batch size(s) given "
                             f"({', '.join(map(str, batch_sizes))}) would not be timed: give batch sizes or sweep, "
                             f"not both")
        return [2 ** k for k in range(SWEEP_LIMIT.bit_length())]
    if batch_sizes is None:
        return [1]
    if isinstance(batch_sizes, (int, str)) or not isinstance(batch_sizes, Sequence):
        raise ValueError(f"batch_sizes must be a list of positive integers such as [1, 8, 32], got {batch_sizes!r}")
    sizes = list(batch_sizes)
    if not sizes or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in sizes):
        raise ValueError(f"batch sizes must be positive integers, got {batch_sizes!r}")
    return sizes


def _inputs(input_shape, inputs, batch, run):
    if inputs is None:
        return (example_batch(tuple(input_shape), batch, run),), {}
    made = make_inputs(inputs, batch)
    if run.cast_to is not None:  # a cast copy takes inputs in its precision
        made = tree_map(lambda t: t.to(run.cast_to) if isinstance(t, torch.Tensor) and t.is_floating_point() else t,
                        made)
    args, kwargs = call_args(made)
    carried = infer_batch(args, kwargs)
    if callable(inputs) and carried is not None and carried != batch:
        raise ValueError(f"inputs({batch}) made a batch of {carried}: the callable must make batch-size inputs")
    return args, kwargs


def _power_sampler_factory(device: torch.device):
    """A callable making a PowerSampler for this GPU, or None (CPU, or NVML unavailable)."""
    if device.type != "cuda":
        return None
    nvml = load_nvml()
    if nvml is None:
        return None
    handle = handle_for(nvml, device.index or 0)
    return lambda: PowerSampler(nvml, handle)


def _measure(work, plain, input_shape, inputs, batch, run, clock, quick, counts, power) -> BenchmarkRow:
    """Warm up, then time latency (synchronized each batch) and throughput (back to back), then
    count the same work on the same batch."""
    oom = False
    options = run.options
    try:
        args, kwargs = _inputs(input_shape, inputs, batch, run)
        step = make_step(work, args, kwargs, run)
        with torch.inference_mode(not options.train):
            _warm_up(step, clock, options)
            if quick:  # max_batch candidates: confirm a few steps fit, no statistics
                for _ in range(3):
                    step()
                clock.synchronize()
                return BenchmarkRow(batch)
            if run.device.type == "cuda":  # the peak of the timed steps alone, warm-up excluded
                torch.cuda.reset_peak_memory_stats(run.device)
            with (power() if power else nullcontext()) as sampler:
                samples = sample(step, clock, min_time=options.min_time, min_runs=options.min_runs,
                                 max_runs=options.max_runs, max_time=options.max_time)
                latency = LatencyStats.of(samples)
                repeats = max(1, min(len(samples), int(options.min_time / max(latency.p50, 1e-9)) or 1))
                per_batch = run_back_to_back(step, clock, repeats)
            allocated, reserved = _cuda_peaks(run.device)
        if counts is not None:
            with run.autocast_context():
                flops, nbytes = counts(plain, args, kwargs, batch)
        else:
            flops = nbytes = None
    except Exception as exc:  # noqa: BLE001 - only memory exhaustion is turned into a row
        if not is_out_of_memory(exc):
            raise
        oom = True
    if oom:  # outside the except block, so the failed frame's tensors can be freed
        _free_memory(run.device)
        return BenchmarkRow(batch, status="OOM")
    return BenchmarkRow(batch, latency=latency, throughput_batch_s=per_batch, flops_per_batch=flops,
                        bytes_per_batch=nbytes, power=sampler.summary() if sampler else None,
                        samples_processed=(len(samples) + repeats) * batch if sampler else None,
                        max_memory_allocated=allocated, max_memory_reserved=reserved)


def _cuda_peaks(device: torch.device) -> tuple[int | None, int | None]:
    """torch.cuda.max_memory_allocated and max_memory_reserved since the last reset (CUDA only):
    the measured peak to put beside a memory prediction."""
    if device.type != "cuda":
        return None, None
    return torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)


def _warm_up(step, clock, options) -> None:
    """At least ``warmup`` runs and ``warmup_time`` seconds (cudnn autotune, compile, allocator)."""
    sample(step, clock, min_time=options.warmup_time, min_runs=options.warmup, max_runs=max(options.warmup, 1000))
    clock.synchronize()


def _largest_batch(rows: list[BenchmarkRow], measure) -> tuple[int | None, bool]:
    """(largest batch that fits, whether a larger one failed): a binary search between the largest
    batch that fit (0 when none did) and the smallest that did not; 0 when not even batch 1 fits.
    Without a failure above it, the largest batch tried is only a lower bound (False)."""
    fits = [r.batch_size for r in rows if r.ok]
    fails = [r.batch_size for r in rows if not r.ok]
    if not fits and not fails:
        return None, False
    lo = max(fits, default=0)
    hi = min((b for b in fails if b > lo), default=None)
    if hi is None:
        return lo, False  # nothing failed above it: the largest size tried
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if measure(mid, quick=True).ok:
            lo = mid
        else:
            hi = mid
    return lo, True


def _progress(items, enabled, label):
    """A tqdm bar on a terminal (quiet when output is redirected, or enabled=False)."""
    if enabled is False or len(items) < 2:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=label, disable=None if enabled is None else not enabled, leave=False)


def environment(device: torch.device, threads: int) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
           "cpu": cpu_model_name(), "logical_cpus": usable_cpus(), "intra_op_threads": threads,
           "inter_op_threads": torch.get_num_interop_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, cuda=torch.version.cuda, gpu_memory_bytes=props.total_memory,
                   sm_count=props.multi_processor_count)
    return env
