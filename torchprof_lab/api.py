"""The public entry points: count() for static cost, profile() for everything measured.

Data flows one way: the model is counted, then timed (each timing row counts the very work
it timed), then compared with the device's ceilings, and one ProfileReport is made at the end.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from .counting.engine import run_pass
from .counting.rollup import layer_records, params_used, tensor_totals
from .dtypes import label, precision
from .errors import UncountedOpsError
from .hardware.ceiling import ceiling_for
from .hardware.compare import HardwareComparison, compare
from .model_state import call_args, check_device, floating_dtype, model_device
from .result import ProfileReport
from .timing.benchmark import benchmark
from .timing.options import TimingOptions
from .torch_internals import tree_leaves, tree_map, uncompiled_name


def count(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int = 1, *,
          inputs=None, device=None, backward: bool = False, train: bool | None = None,
          strict: bool = False, depth: int | None = None, name: str | None = None,
          dtype=None, formulas: dict | None = None) -> ProfileReport:
    """Count params, MACs, FLOPs and bytes of one forward (and backward) pass, per layer.

    input_shape is one sample's shape (the batch is separate); ``inputs`` takes any example
    input instead: a tensor, a tuple of positional args, or a dict of keyword args.
    device="meta" counts without allocating weights or doing arithmetic. ``dtype`` counts the
    model in another precision (a cast copy; bytes follow the element size). ``formulas``
    ({op: (args, kwargs, out) -> (macs, flops)}) adds or overrides cost formulas for this call.
    The model runs in eval mode unless ``train`` (default: train exactly when ``backward``);
    its flags, weights, buffers, hooks and gradients are as before when this returns or raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    meta, run_device = _resolve_device(model, device)
    held = floating_dtype(model)
    cast = precision(dtype).dtype if dtype is not None else None
    cast = None if cast == held else cast
    # a real model in another precision is a cast copy; on meta the stand-in tensors are cast
    work = copy.deepcopy(model).to(cast) if cast is not None and not meta else model
    args, kwargs, batch, description = _example_inputs(work, input_shape, batch_size, inputs, run_device,
                                                       dtype=cast)
    return _count(work, args, kwargs, batch, description, meta=meta, backward=backward,
                  train=backward if train is None else bool(train), strict=strict, depth=depth,
                  name=name or type(model).__name__, device=str(run_device), formulas=formulas,
                  held=held, counted=cast or held, cast=cast if meta else None)


def _count(model, args, kwargs, batch, description, *, meta, backward, train, strict, depth, name, device,
           held, counted, formulas=None, cast=None) -> ProfileReport:
    """One counting pass of ``model(*args, **kwargs)`` made into the report's records."""
    result = run_pass(model, args, kwargs, meta=meta, backward=backward, train=train, formulas=formulas,
                      cast=cast)
    if strict and result.uncounted:
        raise UncountedOpsError(result.uncounted)
    model_record, layers = layer_records(model, result)
    return ProfileReport(
        model=name, inputs=description, batch_size=batch, device=device,
        mode="train" if train else "eval", backward=backward,
        params_used=params_used(model, result), **tensor_totals(model, list(result.accumulators)),
        param_dtype=label(held), dtype=label(counted),
        model_record=model_record, layers=tuple(layers), uncounted_ops=result.uncounted, depth=depth,
    )


def profile(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int = 1, *,
            batch_sizes: Sequence[int] | None = None, timing: bool = True, inputs=None, device=None,
            strict: bool = False, depth: int | None = None, name: str | None = None,
            backward: bool | None = None, hardware: bool = True, formulas: dict | None = None,
            options: TimingOptions | None = None, **settings) -> ProfileReport:
    """Counts, timing and the hardware comparison in one report.

    ``options`` (a TimingOptions) or its fields as keywords (dtype, train, warmup, min_time,
    sweep, max_batch, channels_last, compile, per_layer, threads ...) say how to time. Each
    timing row's FLOPs and bytes are counted on the work it timed (same precision, memory
    format, device and batch), and the per-layer table is that count at the first batch size.
    With train=True the rows time a whole training step and the counts include the backward
    (``backward`` alone counts it without timing training). A meta-device model is only
    counted. ``hardware`` compares rows and layers with the device's ceilings (utilisation,
    roofline; on the CPU this measures a matmul and a copy once per process, about a second).
    """
    options = TimingOptions.of(options, **settings)
    sizes = list(batch_sizes) if batch_sizes else [batch_size]
    backward = options.train if backward is None else backward
    name = name or type(model).__name__
    if not timing or model_device(model).type == "meta" or (device is not None and str(device) == "meta"):
        return count(model, input_shape, sizes[0], inputs=inputs, device=device, backward=backward,
                     train=options.train or None, strict=strict, depth=depth, name=name,
                     dtype=options.dtype, formulas=formulas)
    counted: dict[int, ProfileReport] = {}

    def counts(work, args, kwargs):
        """Count what was just timed; the first batch's count becomes the per-layer table."""
        where = model_device(work)
        _, _, batch, description = _wrap_inputs(args if not kwargs else kwargs, where)
        under_autocast = torch.is_autocast_enabled(where.type)
        report = _count(work, args, kwargs, batch, description, meta=False, backward=backward,
                        train=options.train, strict=strict, depth=depth, name=name, device=str(where),
                        formulas=formulas, held=floating_dtype(model),
                        counted=torch.get_autocast_dtype(where.type) if under_autocast else floating_dtype(work))
        counted.setdefault(batch, report)
        flops = report.total_flops if options.train else report.flops
        nbytes = report.bytes + report.backward_bytes if options.train else report.bytes
        return flops, nbytes

    bench = benchmark(model, input_shape, None if inputs is not None else sizes, inputs=inputs, device=device,
                      options=options, counts=counts, name=name)
    ok = [r.batch_size for r in bench.rows if r.ok]
    table = counted.get(ok[0]) if ok else None
    if table is None:  # nothing ran: the table counts the model as it is
        table = count(model, input_shape, sizes[0], inputs=inputs, device=device, backward=backward,
                      train=options.train or None, strict=strict, depth=depth, name=name, formulas=formulas)
    if options.per_layer:
        table = _with_layer_latency(table, bench.layer_latency)
    if hardware:
        ceiling = ceiling_for(torch.device(bench.device), bench.dtype, options.threads)
        if ceiling is not None:
            return _with_hardware(table, bench, compare([*table.layers, table.model_record], bench.rows, ceiling))
    return replace(table, timing=bench)


def _with_layer_latency(report: ProfileReport, latency: dict[str, float]) -> ProfileReport:
    """Per-layer medians from the timing pass join each layer's record (compile's prefix dropped)."""
    latency = {uncompiled_name(name): seconds for name, seconds in latency.items()}
    return replace(report, layers=tuple(replace(r, latency=latency.get(r.name)) for r in report.layers),
                   model_record=replace(report.model_record, latency=latency.get("")))


def _with_hardware(report: ProfileReport, bench, comparison: HardwareComparison) -> ProfileReport:
    """The report with each row's utilisation and each layer's roofline bound, as new values."""
    uses = {u.batch_size: u for u in comparison.rows}
    rows = tuple(replace(r, utilisation=uses[r.batch_size].utilisation,
                         utilisation_at_observed_clock=uses[r.batch_size].utilisation_at_observed_clock,
                         bandwidth_utilisation=uses[r.batch_size].bandwidth_utilisation) for r in bench.rows)

    def bounded(record):
        found = comparison.layers.get(record.name)
        return replace(record, bound=found.bound, min_time=found.min_time) if found else record

    return replace(report, layers=tuple(bounded(r) for r in report.layers),
                   model_record=bounded(report.model_record),
                   timing=replace(bench, rows=rows, ceiling=comparison.ceiling))


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


def _example_inputs(model, input_shape, batch_size, inputs, device, dtype=None):
    if inputs is not None:
        if input_shape is not None:
            raise ValueError("give input_shape or inputs, not both")
        return _wrap_inputs(inputs, device)
    if input_shape is None:
        raise ValueError("input_shape is required (one sample's shape, e.g. (3, 224, 224)) unless inputs= is given")
    shape = _check_shape(input_shape)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    dtype = dtype or floating_dtype(model)
    x = torch.randn((batch_size, *shape), dtype=dtype, device=device)
    return (x,), {}, batch_size, f"{(batch_size, *shape)} {label(dtype)}"


def _check_shape(input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, int) or not isinstance(input_shape, (Sequence, torch.Size)) or isinstance(input_shape, str):
        raise ValueError(f"input_shape must be a sequence of positive ints such as (3, 224, 224), got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be a sequence of positive ints such as (3, 224, 224), got {input_shape!r}")
    return shape


def _wrap_inputs(inputs, device):
    """(args, kwargs, batch, description) of a user's example input, moved to meta for a meta count."""
    if device.type == "meta":
        inputs = tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) else t, inputs)
    args, kwargs = call_args(inputs)
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    batch = tensors[0].shape[0] if tensors and tensors[0].dim() else 1
    description = ", ".join(f"{tuple(t.shape)} {label(t.dtype)}" for t in tensors[:4])
    return args, kwargs, batch, description or "(no tensors)"
