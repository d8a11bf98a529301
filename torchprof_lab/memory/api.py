"""memory(): the peak memory of an inference or training step, by category and by layer.

The step runs under the tracker (memory/tracker.py) on meta stand-ins (a prediction: nothing is
allocated) or on the model's real device (a measurement with the same code). The user's model is
never run: a copy is (meta stand-ins, or a real deep copy), under the model's lock with torch's
RNG state restored afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace

import torch
from torch import nn

from ..dtypes import label, precision
from ..inputs import batch_label_note, call_args, check_batch_size, check_shape, infer_batch, make_inputs, moved
from ..model_state import check_device, floating_dtype, model_copy, model_device, model_lock, rng_restored
from ..optimizers import make_optimizer
from ..timing.prepare import precision_plan, trainable_outputs
from ..torch_internals import tree_leaves, tree_map
from ..target_kernels import TargetKernels, calls
from .result import CATEGORIES, LayerMemory, MemoryReport, TimelinePoint
from .tracker import CUDA_BLOCK, LayerHooks, MemoryTracker

OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw")
MEMORY_PRECISIONS = ("fp32", "fp16", "bf16")


def memory(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int | None = None, *,
           inputs=None, train: bool = False, optimizer=None, loss_fn=None, dtype=None, device=None,
           target=None, name: str | None = None) -> MemoryReport:
    """The peak memory of one step of ``model``: inference (a forward under no_grad) or, with
    ``train=True``, forward, loss, backward, optimizer step and ``zero_grad(set_to_none=True)``,
    run twice; the second step is reported (its optimizer state exists).

    ``optimizer``: a class (``torch.optim.AdamW``), a factory ``lambda params: ...`` or a name
    (sgd, sgd-momentum, adam, adamw); SGD by default. ``loss_fn(output) -> scalar`` (default: the
    sum of the floating outputs). ``dtype`` fp16/bf16: a cast copy for inference, autocast with fp32
    master weights for training. ``device="meta"`` predicts without allocating (also for a meta
    model); otherwise the step runs on the model's device and is measured with the same tracker.
    ``target`` (cuda or cpu; default the model's device, CUDA for a meta model): whose allocator the
    sizes follow (CUDA rounds each allocation up to 512 bytes).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(train, bool):
        raise ValueError(f"train must be True or False, got {train!r}")
    if optimizer is not None and not train:
        raise ValueError("optimizer= applies to a training step: pass train=True")
    if loss_fn is not None and not callable(loss_fn):
        raise ValueError("loss_fn must be a callable of the model's output")
    if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{optimizer}': use one of {', '.join(OPTIMIZERS)}, a class or a factory")
    if inputs is None:
        if input_shape is None:
            raise ValueError("input_shape is required (one sample's shape, e.g. (3, 224, 224)) unless inputs= is given")
        check_shape(input_shape)
    elif input_shape is not None:
        raise ValueError("give input_shape or inputs, not both")
    if batch_size is not None:
        check_batch_size(batch_size)
    want_dtype = None if dtype is None else precision(dtype, allowed=MEMORY_PRECISIONS).name
    with model_lock(model), rng_restored():
        home = model_device(model)
        meta = home.type == "meta" or (device is not None and check_device(device).type == "meta")
        if device is not None and not meta and check_device(device).type != home.type:
            raise ValueError(f"model is on {home} but device={device} was asked for: move the model, "
                             f"or pass device='meta' to predict without running it")
        target = _target(target, home)
        held = floating_dtype(model)
        want, cast, autocast = precision_plan(held, want_dtype, train)
        step = dict(model=model, input_shape=input_shape, inputs=inputs, train=train, optimizer=optimizer,
                    loss_fn=loss_fn, want=want, cast=cast, autocast=autocast, target=target,
                    name=name or type(model).__name__)
        report = _run(**step, batch=batch_size, run_device=torch.device("meta") if meta else home)
    fixed = inputs is not None and not callable(inputs)

    def predictor(batch: int) -> int:
        with model_lock(model), rng_restored():
            return _run(**step, batch=batch, run_device=torch.device("meta"), timeline=False).peak_bytes

    return replace(report, predictor=None if fixed else predictor)


def memory_of_parallel_step(model: nn.Module, input_shape: Sequence[int], batch_size: int, *, wrap, device,
                            categories: tuple[str, ...], optimizer=None, dtype=None, name: str | None = None,
                            notes: tuple[str, ...] = ()) -> MemoryReport:
    """The measured memory of one training step of ``model`` on this rank, run through
    ``wrap(copy, tracker) -> module`` (``distributed.py`` builds DistributedDataParallel or FSDP2's
    ``fully_shard`` around the step's copy and names its buffers' categories with the tracker).

    The same tracker and step as ``memory(train=True)`` on a real device, on ``device`` (the rank's),
    with ``categories`` beside the usual ones; two steps run unreported (the first makes the optimizer
    state, the second is where DDP rebuilds its buckets in the order gradients arrived) and the
    third is reported. No timeline and no predictor: the report travels between ranks."""
    check_shape(input_shape)
    check_batch_size(batch_size)
    want_dtype = None if dtype is None else precision(dtype, allowed=MEMORY_PRECISIONS).name
    device = check_device(device)
    with model_lock(model), rng_restored():
        want, cast, autocast = precision_plan(floating_dtype(model), want_dtype, True)
        report = _run(model=model, input_shape=input_shape, inputs=None, batch=batch_size, train=True,
                      optimizer=optimizer, loss_fn=None, want=want, cast=cast, autocast=autocast,
                      target=device.type, name=name or type(model).__name__, run_device=device, timeline=False,
                      wrap=wrap, warm_steps=2, categories=CATEGORIES + tuple(categories))
    return replace(report, notes=report.notes + tuple(notes))


def _target(target, home: torch.device) -> str:
    if target is None:
        return "cuda" if home.type in ("meta", "cuda") else home.type
    kind = str(target).split(":")[0].lower()
    if kind not in ("cuda", "cpu"):
        raise ValueError(f"target must be 'cuda' or 'cpu', got {target!r}")
    return kind


def _default_loss(output) -> torch.Tensor:
    """The issue's default loss: the sum of every floating output that requires grad."""
    return sum(t.float().sum() for t in trainable_outputs(output))


def _example(model, input_shape, inputs, batch, device, dtype):
    """(args, kwargs, batch, description) on ``device``, floating tensors in ``dtype``."""
    if inputs is not None:
        made = make_inputs(inputs, batch or 1)
        made = tree_map(lambda t: moved(t, device, dtype) if isinstance(t, torch.Tensor) else t, made)
        args, kwargs = call_args(made)
        found = batch if batch is not None else infer_batch(args, kwargs) or 1
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        return args, kwargs, found, ", ".join(f"{tuple(t.shape)} {label(t.dtype)}" for t in tensors[:4])
    batch = batch or 1
    shape = (batch, *check_shape(input_shape))
    x = torch.randn(shape, dtype=dtype, device=device)
    return (x,), {}, batch, f"{shape} {label(dtype)}"


def _run(*, model, input_shape, inputs, batch, train, optimizer, loss_fn, want, cast, autocast, target, name,
         run_device: torch.device, timeline: bool = True, wrap=None, warm_steps: int = 1,
         categories: tuple[str, ...] = CATEGORIES) -> MemoryReport:
    meta = run_device.type == "meta"
    if meta:
        work = model_copy(model, meta=True, cast=cast)
    else:
        work = model_copy(model)
        if model_device(work) != run_device:  # a rank's own GPU (memory_of_parallel_step)
            work = work.to(run_device)
        if cast is not None:
            work = work.to(cast)
    work.train(train)
    names = {m: n for n, m in work.named_modules()}
    labelled = batch_label_note(inputs, batch)  # the batch asked for, before the inputs' own is read
    args, kwargs, batch, description = _example(work, input_shape, inputs, batch, run_device,
                                                cast or floating_dtype(work))
    hooks = LayerHooks(names)
    tracker = MemoryTracker(run_device.type, hooks, block=CUDA_BLOCK if target == "cuda" else 1)
    run = work if wrap is None else wrap(work, tracker)  # DDP or FSDP2 around the copy (sharded in place)
    for p in work.parameters():
        tracker.track(p, "parameters")
    for b in work.buffers():
        tracker.track(b, "buffers")
    for t in tree_leaves((args, kwargs)):
        tracker.track(t, "inputs")
    notes = [labelled] if labelled else []
    opt = opt_name = None
    if train:
        params = [p for p in work.parameters() if p.requires_grad]
        opt, opt_name = make_optimizer(optimizer, params, foreach=target == "cuda")
        foreach = target == "cuda" and getattr(opt, "defaults", {}).get("foreach")
        notes.append(f"optimizer {opt_name}: its state is what its own step created in this run"
                     + (" (foreach, torch's default on CUDA)" if foreach else ""))
    if autocast:
        mixed = torch.autocast(run_device.type, dtype=want.dtype) if not meta else TargetKernels(want.dtype, target)
        notes.append(f"{want.name} autocast with fp32 master weights"
                     + (": emulated on meta (torch.autocast leaves meta tensors alone)" if meta else ""))
    else:  # on meta, scaled_dot_product_attention still follows the target's kernel
        mixed = TargetKernels(None, target) if meta else None
    loss_of = loss_fn or _default_loss

    def step():
        tracker.enter("forward")
        with mixed if mixed is not None else nullcontext():
            out = run(*args, **kwargs)
            tracker.enter("loss")
            loss = loss_of(out)
            del out
        if isinstance(mixed, TargetKernels):
            mixed.clear()
        tracker.enter("backward")
        loss.backward()
        del loss
        for p in params:
            tracker.track(p.grad, "gradients")
        tracker.enter("optimizer")
        opt.step()
        for state in opt.state.values():
            for value in state.values():
                tracker.track(value, "optimizer_state")
        tracker.enter("zero_grad")
        opt.zero_grad(set_to_none=True)
        tracker.enter("setup")

    def infer():
        tracker.enter("forward")
        with torch.no_grad(), mixed if mixed is not None else nullcontext():
            out = work(*args, **kwargs)
        del out
        tracker.enter("setup")

    hooks.attach()
    try:
        with tracker, torch.autograd.graph.saved_tensors_hooks(tracker.pack, tracker.unpack):
            if train:
                for _ in range(warm_steps):
                    step()
                tracker.mark()
                step()
            else:
                tracker.mark()
                infer()
        report = _analyse(tracker, work, names, timeline=timeline, categories=categories,
                          largest=wrap is not None)
    finally:
        hooks.detach()
        tracker.live.clear()  # later frees (the copy going away) are not part of the step
    if meta and mixed.fused:
        notes.append(f"scaled_dot_product_attention ({calls(mixed.fused)}) predicted with the target's fused kernel: "
                     + ("memory-efficient attention, which keeps the output and the log-sum-exp as flash attention "
                        "does" if target == "cuda" else "the CPU flash kernel"))
    if meta and mixed.target_math:
        notes.append(f"scaled_dot_product_attention ({calls(mixed.target_math)}: dropout, a value head size that "
                     "differs, or other inputs torch's CPU choice sends there) takes the math path on the CPU too: "
                     "predicted as such, the probabilities kept")
    if meta and (mixed.unfused or (tracker.math_attention and not mixed.target_math)):
        notes.append("some attention ran the math path on meta (grouped-query attention on CUDA, or inside a function "
                     "seen whole): it keeps the attention probabilities for backward, where the target's fused "
                     "kernels keep only the log-sum-exp; those layers are over-predicted")
    if target == "cuda":
        notes.append("CUDA allocator: every allocation rounded up to 512 bytes; segments (2 MiB / 20 MiB), "
                     "the CUDA context and cuBLAS/cuDNN workspaces are not included")
    return MemoryReport(model=name, inputs=description, batch_size=batch, mode="train" if train else "eval",
                        dtype=want.name, autocast=autocast, optimizer=opt_name, device=str(run_device),
                        target=target, notes=tuple(notes), **report)


def _ancestors(name: str) -> list[str]:
    if not name:
        return [""]
    parts = name.split(".")
    return ["", *(".".join(parts[:i]) for i in range(1, len(parts) + 1))]


def _analyse(tracker: MemoryTracker, work: nn.Module, names: dict, *, timeline: bool,
             categories: tuple[str, ...] = CATEGORIES, largest: bool = False) -> dict:
    """Replay the events: the peak of the reported part, bytes by category there, per-layer figures
    (and with ``largest`` the most each category held at any moment of the reported part)."""
    index = {c: i for i, c in enumerate(categories)}
    totals = [0] * len(categories)
    total = 0
    events = tracker.events
    for record, delta, _, _ in events[:tracker.start]:
        totals[index[record.category]] += delta
        total += delta
    peak, peak_totals, peak_where = total, tuple(totals), ("setup", "")
    most = list(totals)
    points = []
    fwd: dict[str, int] = {}
    bwd: dict[str, int] = {}
    ancestors_of: dict[str, list[str]] = {}
    for i, (record, delta, phase, layer) in enumerate(events[tracker.start:]):
        totals[index[record.category]] += delta
        total += delta
        if timeline:
            points.append(TimelinePoint(i, phase, layer, total, tuple(totals)))
        if total > peak:
            peak, peak_totals, peak_where = total, tuple(totals), (phase, layer)
        if largest and delta > 0 and totals[index[record.category]] > most[index[record.category]]:
            most[index[record.category]] = totals[index[record.category]]
        if phase in ("forward", "backward"):
            table = fwd if phase == "forward" else bwd
            chain = ancestors_of.get(layer)
            if chain is None:
                chain = ancestors_of[layer] = _ancestors(layer)
            for name in chain:
                if table.get(name, -1) < total:
                    table[name] = total
    subtree_saved: dict[str, int] = {}  # each layer's own saved bytes and its descendants' (by name)
    for n, saved in tracker.saved.items():
        for name in _ancestors(n):
            subtree_saved[name] = subtree_saved.get(name, 0) + saved
    layers = tuple(LayerMemory(name=n, type=type(m).__name__, depth=n.count(".") + 1,
                               saved_bytes=subtree_saved.get(n, 0), forward_peak=fwd.get(n, 0),
                               backward_peak=bwd.get(n, 0), own_saved_bytes=tracker.saved.get(n, 0))
                   for m, n in names.items() if n)
    phase, layer = peak_where
    where = {"forward": f"{layer or 'the model'} forward", "backward": f"{layer or 'the model'} backward",
             "optimizer": "optimizer step", "loss": "loss", "zero_grad": "zero_grad",
             "setup": "before the step"}[phase]
    return {"peak_bytes": peak, "by_category": dict(zip(categories, peak_totals)), "peak_at": where,
            "layers": layers, "timeline": tuple(points), **({"largest_by_category": dict(zip(categories, most))}
                                                          if largest else {})}
