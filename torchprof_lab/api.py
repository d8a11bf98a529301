"""The public entry points: count() for static cost, profile() for everything measured.

Data flows one way: the model is counted, then timed (each timing row counts the very work
it timed), then compared with the device's ceilings, and one ProfileReport is made at the end.
"""

from __future__ import annotations

from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .counting.engine import run_pass
from .counting.rollup import embedding_params, layer_records, params_used, tensor_totals
from .dtypes import label, precision
from .errors import ForwardError, ProfilerError, UncountedOpsError
from .hardware.ceiling import ceiling_for
from .hardware.compare import HardwareComparison, compare
from .memory.api import memory as memory_of
from .inputs import batch_label_note, call_args, check_batch_size, check_shape, infer_batch, make_inputs, moved
from .model_state import check_device, floating_dtype, model_copy, model_device, model_lock, rng_restored
from .result import ProfileReport
from .timing.benchmark import benchmark, is_out_of_memory
from .timing.options import TimingOptions
from .timing.prepare import precision_plan

COUNTED = ("fp64", "fp32", "tf32", "fp16", "bf16")  # precisions a count can be made in
from .torch_internals import tree_leaves, tree_map, uncompiled_name


def count(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int | None = None, *,
          inputs=None, device=None, backward: bool = False, train: bool | None = None,
          strict: bool = False, depth: int | None = None, name: str | None = None,
          dtype=None, formulas: dict | None = None) -> ProfileReport:
    """Count params, MACs, FLOPs and bytes of one forward (and backward) pass, per layer.

    input_shape is one sample's shape (the batch is separate, 1 by default); ``inputs`` takes
    any example input instead: a tensor, a tuple of positional args, a dict of keyword args or
    a callable of the batch size; its batch is the one its tensors carry (``batch_size=`` when
    their first dimensions differ).
    device="meta" counts without allocating weights or doing arithmetic. ``dtype`` counts the
    model in another precision as timing runs it: a cast copy, or for a training step
    (backward=True) of an fp32 model in fp16/bf16, autocast (not on meta). ``formulas``
    ({op: (args, kwargs, out) -> (macs, flops)}) adds or overrides cost formulas for this call.
    The model runs in eval mode unless ``train`` (default: train exactly when ``backward``);
    its flags, weights, buffers, hooks and gradients are as before when this returns or raises.
    """
    _check_common(model, strict=strict, backward=backward, depth=depth, name=name, formulas=formulas)
    if train is not None and not isinstance(train, bool):
        raise ValueError(f"train must be True, False or None, got {train!r}")
    if dtype is not None:
        dtype = precision(dtype, allowed=COUNTED).name
    with model_lock(model), rng_restored():  # one run per model at a time; a seeded program unaffected
        meta, run_device = _resolve_device(model, device)
        held = floating_dtype(model)
        want, cast, autocast = precision_plan(held, dtype, backward)
        if autocast and meta:
            raise ValueError(f"a {want.name} training step runs under autocast, which does not run on meta: "
                             f"count on the model's device, or count a model cast to {want.name}")
        # a real model in another precision is a cast copy; on meta the stand-in tensors are cast
        work = model_copy(model).to(cast) if cast is not None and not meta else model
        args, kwargs, batch, description = _example_inputs(work, input_shape, batch_size, inputs, run_device,
                                                           dtype=cast)
        with torch.autocast(run_device.type, dtype=want.dtype) if autocast else nullcontext():
            report = _count(work, args, kwargs, batch or 1, description, meta=meta, backward=backward,
                            train=backward if train is None else bool(train), strict=strict, depth=depth,
                            name=name or type(model).__name__, device=str(run_device), formulas=formulas,
                            held=held, counted=want.name, cast=cast if meta else None, totals_of=model,
                            attention=_attention_target(model) if meta else None)
    said = batch_label_note(inputs, batch_size)
    if said:
        report = replace(report, notes=(*report.notes, said))
    if batch is None:  # the counts stand; only the batch label is unknown
        return replace(report, notes=(*report.notes, "batch size unknown: the inputs' first dimensions differ "
                                                     "(pass batch_size= to label it); shown as 1"))
    return report


def _count(model, args, kwargs, batch, description, *, meta, backward, train, strict, depth, name, device,
           held, counted: str, formulas=None, cast=None, totals_of=None, attention=None) -> ProfileReport:
    """One counting pass of ``model(*args, **kwargs)`` made into the report's records; parameter
    and buffer totals are those of ``totals_of`` (the user's model, not a cast copy of it);
    ``attention``: the device whose attention kernel a meta pass counts (see ``run_pass``)."""
    result = run_pass(model, args, kwargs, meta=meta, backward=backward, train=train, formulas=formulas,
                      cast=cast, attention=attention)
    if strict and result.uncounted:
        raise UncountedOpsError(result.uncounted)
    model_record, layers = layer_records(model, result)
    return ProfileReport(
        model=name, inputs=description, batch_size=batch, device=device,
        mode="train" if train else "eval", backward=backward,
        params_used=params_used(model, result),
        **(tensor_totals(totals_of) if _other_and_materialised(totals_of, model)
           else tensor_totals(model, list(result.accumulators))),
        param_dtype=label(held), dtype=counted,
        embedding_params=embedding_params(totals_of if totals_of is not None else model),
        model_record=model_record, layers=tuple(layers), uncounted_ops=result.uncounted, depth=depth,
        notes=result.notes,
    )


def profile(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int | None = None, *,
            memory: bool | dict = False, **settings) -> ProfileReport:
    """Counts, timing and the hardware comparison in one report (``_profile`` below says how);
    ``memory=True`` adds the peak memory of one step at the first batch size (``report.memory``,
    see ``torchprof_lab.memory``): inference, or a training step with ``train=True``, in the
    profile's dtype; a dict passes ``optimizer``, ``target`` or ``loss_fn`` on to it."""
    if not isinstance(memory, (bool, dict)):
        raise ValueError(f"memory must be True, False or a dict of memory() settings, got {memory!r}")
    timed = {k: settings.pop(k) for k in list(settings) if k in TimingOptions.__dataclass_fields__}
    options = TimingOptions.of(settings.pop("options", None), **timed)  # resolved once, for both steps
    report = _profile(model, input_shape, batch_size, options=options, **settings)
    if memory is False:
        return report
    return replace(report, memory=profile_memory(model, input_shape, batch_size, memory, options, settings))


def profile_memory(model: nn.Module, input_shape, batch_size, memory: bool | dict, options: TimingOptions,
                   settings: dict):
    """The memory section of a profile: ``memory()`` of one step at the first batch size, in the
    profile's mode and dtype (``settings``: profile's other keywords; ``memory`` a dict adds
    ``memory()`` settings such as ``optimizer``, ``target``, ``loss_fn``)."""
    extra = dict(memory) if isinstance(memory, dict) else {}
    if options.train and options.optimizer is not None:
        extra.setdefault("optimizer", options.optimizer)
    sizes = settings.get("batch_sizes")
    device = settings.get("device")
    inputs = settings.get("inputs")
    batch = (sizes[0] if sizes else batch_size) if inputs is None or callable(inputs) else batch_size
    kwargs = dict(inputs=inputs, train=options.train, dtype=None if options.dtype in (None, "tf32") else options.dtype,
                  device="meta" if device is not None and str(device) == "meta" else None, name=settings.get("name"))
    return memory_of(model, input_shape, batch, **{**kwargs, **extra})


def _profile(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int | None = None, *,
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
    _check_common(model, strict=strict, backward=backward, depth=depth, name=name, formulas=formulas,
                  timing=timing, hardware=hardware)
    options = TimingOptions.of(options, **settings)
    if batch_sizes is not None and (isinstance(batch_sizes, (int, str)) or not isinstance(batch_sizes, Sequence)
                                    or not batch_sizes):
        raise ValueError(f"batch_sizes must be a non-empty list of positive integers such as [1, 8, 32], "
                         f"got {batch_sizes!r}")
    with model_lock(model), rng_restored():  # one run per model at a time; a seeded program unaffected
        sizes = list(batch_sizes) if batch_sizes else [batch_size] if batch_size else None
        backward = options.train if backward is None else backward
        name = name or type(model).__name__
        if not timing or model_device(model).type == "meta" or (device is not None and str(device) == "meta"):
            return count(model, input_shape, sizes[0] if sizes else None, inputs=inputs, device=device,
                         backward=backward, train=options.train or None, strict=strict, depth=depth, name=name,
                         dtype=options.dtype, formulas=formulas)
        counted: dict[int, ProfileReport] = {}
        timed_precision = precision_plan(floating_dtype(model), options.dtype, options.train)[0].name

        def counts(work, args, kwargs, batch):
            """Count what was just timed; the first batch's count becomes the per-layer table."""
            where = model_device(work)
            description = _describe(args, kwargs)
            report = _count(work, args, kwargs, batch, description, meta=False, backward=backward,
                            train=options.train, strict=strict, depth=depth, name=name, device=str(where),
                            formulas=formulas, held=floating_dtype(model), totals_of=model,
                            counted=timed_precision)
            counted.setdefault(batch, report)
            flops = report.total_flops if options.train else report.flops
            nbytes = report.bytes + report.backward_bytes if options.train else report.bytes
            return flops, nbytes

        fixed_inputs = inputs is not None and not callable(inputs)
        try:
            # fixed inputs are one batch: batch_sizes asked beside them reach benchmark, which refuses others
            bench = benchmark(model, input_shape, (batch_sizes or None) if fixed_inputs else sizes, inputs=inputs,
                              device=device, batch_size=batch_size if fixed_inputs else None, options=options,
                              counts=counts, name=name)
        except Exception as exc:
            if is_out_of_memory(exc) or isinstance(exc, ProfilerError):
                raise
            # a forward that raised while timed: a counting pass names the layer and the shapes it got
            try:  # in the timed mode: a training-mode layer (batch norm at batch 1) fails as it did
                count(model, input_shape, (sizes or [None])[0], inputs=inputs, device=device, dtype=options.dtype,
                      train=options.train)
            except ForwardError as named:
                raise named from exc
            except Exception:  # noqa: BLE001 - the count failed otherwise: the timing error is the one to show
                pass
            raise
        ok = [r.batch_size for r in bench.rows if r.ok]
        table = counted.get(ok[0]) if ok else None
        if table is None:  # nothing ran: the table counts the model as it is
            table = count(model, input_shape, (sizes or [None])[0], inputs=inputs, device=device, backward=backward,
                          train=options.train or None, strict=strict, depth=depth, name=name, formulas=formulas,
                          dtype=options.dtype)
        if options.per_layer:
            table = _with_layer_latency(table, bench.layer_latency)
        labelled = batch_label_note(inputs, batch_size)
        if labelled and labelled not in table.notes:
            table = replace(table, notes=(*table.notes, labelled))
        if hardware:
            ceiling = ceiling_for(torch.device(bench.device), bench.dtype, options.threads)
            if ceiling is not None:
                return _with_hardware(table, bench, compare([*table.layers, table.model_record], bench.rows, ceiling))
        return replace(table, timing=bench)


def _other_and_materialised(totals_of, model) -> bool:
    """Whether ``totals_of`` is another model than the one counted whose parameters all have a
    size (a lazy model's copy is counted when the model itself has no sizes yet)."""
    return (totals_of is not None and totals_of is not model
            and not any(is_lazy(t) for t in (*totals_of.parameters(), *totals_of.buffers())))


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
def _check_common(model, *, depth, name, formulas, **flags) -> None:
    """One-line errors for arguments count() and profile() share."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for flag, value in flags.items():
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{flag} must be True or False, got {value!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string, got {name!r}")
    if formulas is not None and not isinstance(formulas, dict):
        raise ValueError(f"formulas must be a dict {{op: formula}}, got {type(formulas).__name__}")


def _attention_target(model: nn.Module) -> str | None:
    """The device whose attention kernel a meta count follows: the model's own; for a model built
    on meta, the device this machine would run it on (CUDA where there is one, else the CPU, whose
    count a user can check beside it); None (meta's own choice) for any other device."""
    home = model_device(model).type
    if home == "meta":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return home if home in ("cuda", "cpu") else None


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
    """(args, kwargs, batch, description): the user's inputs on ``device``, or a random batch."""
    if inputs is not None:
        if input_shape is not None:
            raise ValueError("give input_shape or inputs, not both")
        inputs = make_inputs(inputs, batch_size or 1)
        inputs = tree_map(lambda t: moved(t, "meta" if device.type == "meta" else t.device, dtype)
                          if isinstance(t, torch.Tensor) else t, inputs)
        args, kwargs = call_args(inputs)
        batch = batch_size if batch_size is not None else infer_batch(args, kwargs)
        return args, kwargs, check_batch_size(batch) if batch is not None else None, _describe(args, kwargs)
    if input_shape is None:
        raise ValueError("input_shape is required (one sample's shape, e.g. (3, 224, 224)) unless inputs= is given")
    shape = check_shape(input_shape)
    batch_size = check_batch_size(1 if batch_size is None else batch_size)
    dtype = dtype or floating_dtype(model)
    x = torch.randn((batch_size, *shape), dtype=dtype, device=device)
    return (x,), {}, batch_size, f"{(batch_size, *shape)} {label(dtype)}"


def _describe(args, kwargs) -> str:
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    shown = ", ".join(f"{'nested' if t.is_nested else tuple(t.shape)} {label(t.dtype)}" for t in tensors[:4])
    return shown + (f" (+{len(tensors) - 4} more)" if len(tensors) > 4 else "") if shown else "(no tensors)"
