"""The accuracy cost of faster precision: speed-up over fp32 beside how far the outputs move."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .dtypes import precision
from .model_state import model_copy, model_device, model_lock
from .report import render
from .timing.benchmark import benchmark
from .timing.options import TimingOptions
from .torch_internals import tree_leaves

SUPPORTED = ("fp32", "tf32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class PrecisionRow:
    """One precision against fp32 on the same inputs."""

    dtype: str
    p50_s: float
    speedup: float  # fp32 p50 / this p50
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float  # max |diff| / max |fp32 output|
    mean_rel_error: float  # sum |diff| / sum |fp32 output|
    top1_agreement: float | None  # share of samples whose argmax matches fp32 (classifier outputs)
    model_bytes: int  # serialized state_dict size

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PrecisionReport(render.Rendered):
    model: str
    device: str
    inputs: str  # "random ...", "given batch ..." or "DataLoader ..."
    samples: int
    rows: tuple[PrecisionRow, ...]
    notes: tuple[str, ...] = ()  # what makes these errors hard to read

    def row(self, dtype: str) -> PrecisionRow:
        return next(r for r in self.rows if r.dtype == dtype)

    def to_dict(self) -> dict:
        return {"model": self.model, "device": self.device, "inputs": self.inputs, "samples": self.samples,
                "rows": [r.to_dict() for r in self.rows], "notes": list(self.notes)}


def _serialized_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _variant(model: nn.Module, dtype: str, device: torch.device) -> nn.Module | None:
    """The model in ``dtype`` (a copy); None for int8 when there is no Linear layer to quantize."""
    work = model_copy(model).eval()
    if dtype == "int8":
        if device.type != "cpu":
            raise ValueError("int8 dynamic quantization (torch.ao) runs on the CPU only")
        if isinstance(work, nn.Linear):  # quantize_dynamic converts children only: give it a parent
            work = nn.Sequential(work)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's own deprecation notices
            quantized = torch.ao.quantization.quantize_dynamic(work, {nn.Linear}, dtype=torch.qint8)
        if not any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quantized.modules()):
            return None
        return quantized
    if dtype in ("fp16", "bf16"):
        return work.to(precision(dtype).dtype)
    return work


def _batches(model, input_shape, batch_size, inputs, loader, max_batches, device) -> tuple[list, str]:
    if loader is not None:
        batches = []
        for item in loader:
            batches.append(item[0] if isinstance(item, (tuple, list)) else item)
            if len(batches) >= max_batches:
                break
        if not batches:
            raise ValueError("the DataLoader yielded no batches")
        return [b.to(device) for b in batches], f"DataLoader ({len(batches)} batches)"
    if inputs is not None:
        if not isinstance(inputs, torch.Tensor):
            raise TypeError("inputs must be a tensor batch (use loader= for a DataLoader)")
        return [inputs.to(device)], f"given batch {tuple(inputs.shape)}"
    if input_shape is None:
        raise ValueError("input_shape is required unless inputs= or loader= is given")
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn((batch_size, *input_shape), generator=generator).to(device) for _ in range(max_batches)]
    return batches, f"random normal, {max_batches} batches of {(batch_size, *input_shape)} (seed 0)"


def _floats(output) -> list[torch.Tensor]:
    return [t.float() for t in tree_leaves(output) if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _precision_names(dtypes) -> list[str]:
    """'bf16,int8', ['BF16', torch.float16] ... as canonical names, fp32 first, each once."""
    if isinstance(dtypes, (str, torch.dtype)):
        dtypes = [d for d in dtypes.split(",") if d.strip()] if isinstance(dtypes, str) else [dtypes]
    names = [precision(d, allowed=SUPPORTED).name for d in dtypes]
    return list(dict.fromkeys(["fp32", *names]))


def compare_precision(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int = 8, *,
                      dtypes: Iterable[str] | str = ("fp32", "bf16", "int8"), inputs=None, loader=None,
                      max_batches: int = 4, options: TimingOptions | None = None, name: str | None = None,
                      notes: Sequence[str] = (), **settings) -> PrecisionReport:
    """For each precision: its speed-up over fp32 (benchmark p50 on the first batch) and how far
    its outputs move from fp32's on the same inputs (random, a given batch, or a DataLoader).
    int8 is torch.ao dynamic quantization of the Linear layers (CPU). The model is not changed.
    Timing follows ``options`` (or its fields as keywords; default min_time 0.5 s, warmup 2)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dtypes = _precision_names(dtypes)
    for what, value in (("batch_size", batch_size), ("max_batches", max_batches)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    options = TimingOptions.of(options or TimingOptions(min_time=0.5, warmup=2), **settings, progress=False)
    device = model_device(model)
    if device.type == "meta":
        raise ValueError("a model on the meta device has no weights to compare")
    if "tf32" in dtypes and device.type != "cuda":
        raise ValueError("tf32 is a CUDA tensor-core mode; on the CPU compare fp32, bf16 and int8")
    with model_lock(model):  # one run per model at a time: the variants are copies of a settled model
        return _compare(model, dtypes, options, device, name, notes,
                        *_batches(model, input_shape, batch_size, inputs, loader, max_batches, device))


def _compare(model, dtypes, options, device, name, notes, batches, described) -> PrecisionReport:
    reference, rows, said = None, [], []
    for dtype in dtypes:
        work = _variant(model, dtype, device)
        if work is None:
            said.append("int8: the model has no nn.Linear layer for dynamic quantization to convert, so an "
                        "int8 row would be the fp32 model again: left out")
            continue
        cast = precision(dtype).dtype if dtype != "int8" else torch.float32
        tf32 = dtype == "tf32"
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        try:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            with torch.inference_mode():
                outputs = [_floats(work(b.to(cast) if b.is_floating_point() else b)) for b in batches]
            first = batches[0].to(cast) if batches[0].is_floating_point() else batches[0]
            # the run's precision is the variant's own, so tf32 keeps TF32 math on while timed
            timing = benchmark(work, inputs=first, options=replace(options, dtype=None if dtype == "int8" else dtype))
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        if reference is None:
            reference, fp32_p50 = outputs, timing.rows[0].latency.p50
        rows.append(_row(dtype, timing.rows[0].latency.p50, fp32_p50, outputs, reference,
                         _serialized_bytes(work)))
    samples = sum(b.shape[0] for b in batches)
    return PrecisionReport(name or type(model).__name__, str(device), described, samples, tuple(rows),
                           (*notes, *said, *_output_notes(reference, rows)))


TINY_OUTPUT = 1e-4  # fp32 outputs below this in magnitude are a sign of untrained weights


def _output_notes(reference, rows) -> list[str]:
    """What makes the errors hard to read: outputs that are not finite, or near zero (untrained
    models; int8 dynamic quantization floors its activation scale near 1e-7)."""
    if not all(torch.isfinite(r).all() for ref in reference for r in ref):
        return ["the fp32 outputs hold NaN or infinity: errors and top-1 agreement cannot be measured "
                "(left empty); check the model and its inputs"]
    bad = [r.dtype for r in rows if not all(math.isfinite(v) for v in (r.max_abs_error, r.mean_abs_error))]
    if bad:
        return [f"{', '.join(bad)} outputs hold NaN or infinity (overflow in that precision?): their errors "
                f"are left empty"]
    largest = max((r.abs().max().item() for ref in reference for r in ref if r.numel()), default=0.0)
    if largest >= TINY_OUTPUT:
        return []
    return [f"the fp32 outputs are tiny (max |y| = {largest:.2g}), as from untrained weights; low "
            f"precisions can round them away, so errors and top-1 agreement say little here. "
            f"Compare trained weights (--weights DEFAULT, or a model you trained)."]


def _row(dtype, p50, fp32_p50, outputs, reference, size) -> PrecisionRow:
    finite = all(torch.isfinite(t).all() for pair in (outputs, reference) for out in pair for t in out)
    if not finite:  # NaN would read as "agreement 1.0"; JSON gets null
        nan = float("nan")
        return PrecisionRow(dtype, p50, fp32_p50 / p50, nan, nan, nan, nan, None, size)
    diffs = [(o - r).abs() for out, ref in zip(outputs, reference) for o, r in zip(out, ref)]
    refs = [r.abs() for ref in reference for r in ref]
    max_abs = max(d.max().item() for d in diffs)
    total_abs = sum(d.sum().item() for d in diffs)
    count = sum(d.numel() for d in diffs)
    ref_max = max(r.max().item() for r in refs) or 1.0
    ref_sum = sum(r.sum().item() for r in refs) or 1.0
    agree = None
    pairs = [(out[0], ref[0]) for out, ref in zip(outputs, reference) if ref and ref[0].dim() == 2 and ref[0].shape[1] > 1]
    if pairs:
        same = sum((o.argmax(1) == r.argmax(1)).sum().item() for o, r in pairs)
        agree = same / sum(r.shape[0] for _, r in pairs)
    return PrecisionRow(dtype, p50, fp32_p50 / p50, max_abs, total_abs / count, max_abs / ref_max,
                        total_abs / ref_sum, agree, size)
