"""The public entry points: count() for static cost, profile() for everything measured."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

from .counting.engine import run_pass
from .counting.rollup import layer_records, params_used, tensor_totals
from .errors import UncountedOpsError
from .model_state import call_args, check_device, floating_dtype, model_device
from .report.records import ProfileReport
from .hardware.ceiling import ceiling_for
from .hardware.compare import compare_with_hardware
from .timing.benchmark import benchmark

_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
                torch.float64: "fp64", torch.int8: "int8"}


def count(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int = 1, *,
          inputs=None, device=None, backward: bool = False, train: bool | None = None,
          strict: bool = False, depth: int | None = None, name: str | None = None) -> ProfileReport:
    """Count params, MACs, FLOPs and bytes of one forward (and backward) pass, per layer.

    input_shape is one sample's shape (the batch is separate); ``inputs`` takes any example
    input instead: a tensor, a tuple of positional args, or a dict of keyword args.
    device="meta" counts without allocating weights or doing arithmetic. The model runs in
    eval mode unless ``train`` (default: train exactly when ``backward``); its flags,
    weights, buffers, hooks and gradients are as before when this returns or raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    meta, run_device = _resolve_device(model, device)
    args, kwargs, batch, description = _example_inputs(model, input_shape, batch_size, inputs, run_device)
    train = backward if train is None else bool(train)
    result = run_pass(model, args, kwargs, meta=meta, backward=backward, train=train)
    if strict and result.uncounted:
        raise UncountedOpsError(result.uncounted)
    model_record, layers = layer_records(model, result)
    dtype = floating_dtype(model)
    return ProfileReport(
        model=name or type(model).__name__, inputs=description, batch_size=batch,
        device=str(run_device), mode="train" if train else "eval", backward=backward,
        params_used=params_used(model, result), **tensor_totals(model, list(result.accumulators)),
        param_dtype=_DTYPE_NAMES.get(dtype, str(dtype)),
        model_record=model_record, layers=layers, uncounted_ops=result.uncounted, depth=depth,
    )


def profile(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int = 1, *,
            batch_sizes: Sequence[int] | None = None, timing: bool = True, inputs=None, device=None,
            strict: bool = False, depth: int | None = None, name: str | None = None,
            train: bool = False, backward: bool | None = None, hardware: bool = True,
            **timing_options) -> ProfileReport:
    """Counts and timing in one report: the count at the first batch size, a timing row per size.

    Timing options are those of ``benchmark`` (dtype, warmup, min_time, sweep, max_batch,
    channels_last, compile, per_layer, threads ...). With train=True the rows time a whole
    training step and the counts include the backward pass (``backward`` alone counts it
    without timing training). A meta-device model is only counted. ``hardware`` compares the
    rows and layers with the device's ceilings (utilisation, roofline; on the CPU this measures
    a matmul and a copy once per process, about two seconds).
    """
    sizes = list(batch_sizes) if batch_sizes else [batch_size]
    report = count(model, input_shape, sizes[0], inputs=inputs, device=device,
                   backward=train if backward is None else backward, strict=strict, depth=depth, name=name)
    if not timing or report.device == "meta":
        return report

    def counts_at(batch: int) -> tuple[int, int]:
        """FLOPs and bytes of the timed work: a forward, or forward + backward for a training step."""
        counted = report if inputs is not None or batch == report.batch_size else \
            count(model, input_shape, batch, device="meta", backward=train)
        if train:
            return counted.total_flops, counted.bytes + counted.backward_bytes
        return counted.flops, counted.bytes

    report.timing = benchmark(model, input_shape, None if inputs is not None else sizes, inputs=inputs,
                              device=device, train=train, counts=counts_at, name=report.model, **timing_options)
    _attach_layer_latency(report)
    if hardware:
        ceiling = ceiling_for(torch.device(report.timing.device), report.timing.dtype,
                              timing_options.get("threads"))
        if ceiling is not None:
            compare_with_hardware(report, ceiling)
    return report


def _attach_layer_latency(report: ProfileReport) -> None:
    """Per-layer medians from the timing pass join each layer's record (compile's prefix dropped)."""
    latency = {name.removeprefix("_orig_mod.").removeprefix("_orig_mod"): seconds
               for name, seconds in report.timing.layer_latency.items()}
    for record in report.layers:
        record.latency = latency.get(record.name)
    report.model_record.latency = latency.get("")


# ---------------------------------------------------------------------- helpers
def _resolve_device(model: nn.Module, device) -> tuple[bool, torch.device]:
    home = model_device(model)
    if device is None:
        return home.type == "meta", home
    wanted = check_device(device)
    if wanted.type == "meta" or home.type == "meta":
        return True, torch.device("meta")
    if wanted.type != home.type or (wanted.index is not None and wanted != home):
        raise ValueError(f"model is on {home} but device={wanted} was asked for: move the model, "
                         f"or pass device='meta' to count without running it")
    return False, home


def _example_inputs(model, input_shape, batch_size, inputs, device):
    if inputs is not None:
        if input_shape is not None:
            raise ValueError("give input_shape or inputs, not both")
        return _wrap_inputs(inputs, device)
    if input_shape is None:
        raise ValueError("input_shape is required (one sample's shape, e.g. (3, 224, 224)) unless inputs= is given")
    shape = _check_shape(input_shape)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    dtype = floating_dtype(model)
    x = torch.randn((batch_size, *shape), dtype=dtype, device=device)
    return (x,), {}, batch_size, f"{(batch_size, *shape)} {_DTYPE_NAMES.get(dtype, dtype)}"


def _check_shape(input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, int) or not isinstance(input_shape, (Sequence, torch.Size)) or isinstance(input_shape, str):
        raise ValueError(f"input_shape must be a sequence of positive ints such as (3, 224, 224), got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be a sequence of positive ints such as (3, 224, 224), got {input_shape!r}")
    return shape


def _wrap_inputs(inputs, device):
    if device.type == "meta":
        inputs = tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) else t, inputs)
    args, kwargs = call_args(inputs)
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    batch = tensors[0].shape[0] if tensors and tensors[0].dim() else 1
    description = ", ".join(f"{tuple(t.shape)} {_DTYPE_NAMES.get(t.dtype, t.dtype)}" for t in tensors[:4])
    return args, kwargs, batch, description or "(no tensors)"
