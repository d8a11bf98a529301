"""Command line: parse arguments, call the library, print or write the report."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from .api import profile
from .distributed import run_under_torchrun
from .dtypes import TIMED, precision
from .errors import ForwardError, ProfilerError, UncountedOpsError
from .hardware.info import device_info
from .models import build_model
from .precision_compare import compare_precision
from .report.plot import batch_scaling_png, roofline_png
from .report.render import FORMATS, render
from .report.write import write_atomically
from .timing.benchmark import is_out_of_memory
from .timing.options import TimingOptions


def _positive_ints(text: str, example: str, separators: str = ",") -> tuple[int, ...]:
    """'3,224,224' -> (3, 224, 224) (any of ``separators``); an argparse error naming ``example``."""
    for separator in separators[1:]:
        text = text.replace(separator, separators[0])
    try:
        values = tuple(int(part) for part in text.split(separators[0]) if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like {example}, got '{text}'")
    return values


def _shape(text: str) -> tuple[int, ...]:
    return _positive_ints(text, "3,224,224", separators=",x")


def _batches(text: str) -> list[int]:
    return list(_positive_ints(text, "1,8,64"))


def _at_least(convert, minimum, what: str):
    """An argparse type: ``convert(text)`` that must be finite and >= ``minimum``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), float("-inf")) or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return value

    return parse


def _precision(text: str) -> str:
    try:
        return precision(text, allowed=TIMED).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


_positive = _at_least(int, 1, "a positive integer")
_seconds = _at_least(float, 0.0, "a non-negative number of seconds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m torchprof_lab",
                                description="Per-layer params, MACs, FLOPs and bytes of a PyTorch model.")
    p.add_argument("model", nargs="?", help="a torchvision model name (resnet50) or package.module:factory")
    p.add_argument("--device-info", action="store_true", help="describe the device (NVML on a GPU, else the CPU) and exit")
    p.add_argument("--batch", type=_batches, help="batch size, or sizes to time: 1,8,64 (default 1)")
    p.add_argument("--input-shape", type=_shape, help="one sample's shape, e.g. 3,224,224 "
                   "(default: the crop size of the model's weights)")
    p.add_argument("--depth", type=_positive, help="show layers down to this depth")
    p.add_argument("--format", choices=FORMATS, help="table (default), json, csv or markdown; every mode")
    p.add_argument("--output", help="write the report to this file instead of stdout")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or meta (count without running arithmetic)")
    p.add_argument("--weights", help="torchvision weights to load (e.g. DEFAULT); none by default")
    p.add_argument("--backward", action="store_true", help="also count a backward pass (training cost)")
    p.add_argument("--strict", action="store_true", help="fail if any op has no cost formula")
    t = p.add_argument_group("timing")
    t.add_argument("--no-timing", action="store_true", help="count only, time nothing")
    t.add_argument("--sweep", action="store_true", help="time powers of two until memory or --sweep-budget runs out")
    t.add_argument("--sweep-budget", type=_seconds, help="seconds a sweep may take (default 120)")
    t.add_argument("--max-batch", action="store_true", help="binary-search the largest batch that fits")
    t.add_argument("--train", action="store_true", help="time a training step (forward, loss, backward, SGD step)")
    t.add_argument("--dtype", type=_precision, help="precision to count and time in: fp32, fp16, bf16, tf32 "
                   "(or bfloat16, float16 ...; default: the model's own). fp16/bf16 with --train is autocast")
    t.add_argument("--warmup", type=_at_least(int, 0, "a non-negative integer"),
                   help="warm-up runs per batch size (default 3)")
    t.add_argument("--warmup-time", type=_seconds,
                   help="minimum seconds of warm-up per batch size (default 0.5); raise it when a row "
                        "warns of drift, e.g. on a CPU whose boost clock ends after some seconds of load")
    t.add_argument("--min-time", type=_seconds, help="seconds of timed runs per batch size (default 1)")
    t.add_argument("--threads", type=_positive, help="CPU threads for the run (default: torch's)")
    t.add_argument("--channels-last", action="store_true", help="time in channels_last memory format")
    t.add_argument("--compile", action="store_true", help="time torch.compile(model)")
    t.add_argument("--per-layer", action="store_true", help="also time every layer in a separate pass")
    t.add_argument("--roofline", metavar="PNG", help="draw the roofline with every layer to this PNG (matplotlib)")
    t.add_argument("--batch-plot", metavar="PNG",
                   help="draw samples/s and latency against batch size to this PNG (matplotlib); "
                        "pairs with --batch 1,8,64 or --sweep")
    d = p.add_argument_group("distributed")
    d.add_argument("--ddp", action="store_true", help="with --train under torchrun: time the DistributedDataParallel "
                   "step on every rank (gloo on CPU, NCCL on GPUs); rank 0 prints")
    q = p.add_argument_group("precision")
    q.add_argument("--compare-dtypes", metavar="LIST", help="e.g. fp32,bf16,int8: speed-up over fp32 beside "
                   "output error and top-1 agreement (int8: dynamic quantization of Linear layers, CPU)")
    q.add_argument("--sample-batch", metavar="FILE", help="a tensor saved with torch.save to compare on "
                   "(default: random inputs)")
    return p


# the flags each mode takes (beside the model name); any other flag given is a usage error
_COMMON = {"format", "output"}
_MODE_FLAGS = {
    "device_info": _COMMON | {"device"},
    "compare_dtypes": _COMMON | {"batch", "input_shape", "weights", "device", "warmup", "warmup_time",
                                 "min_time", "threads", "sample_batch"},
    "ddp": _COMMON | {"batch", "input_shape", "weights", "device", "train", "dtype", "warmup", "warmup_time",
                      "min_time", "threads"},
    "count": _COMMON | {"batch", "input_shape", "depth", "device", "weights", "backward", "strict", "no_timing",
                        "train", "dtype"},
}
_TIMING_FLAGS = {"sweep", "sweep_budget", "max_batch", "warmup", "warmup_time", "min_time", "threads",
                 "channels_last", "compile", "per_layer", "roofline", "batch_plot"}
_MODE_FLAGS["profile"] = _MODE_FLAGS["count"] | _TIMING_FLAGS
_MODE_SWITCH = {"device_info": "--device-info", "compare_dtypes": "--compare-dtypes", "ddp": "--ddp"}


class UsageError(ValueError):
    """A flag or value that does not fit the chosen mode: exit 2."""


def _given(args) -> set[str]:
    return {k for k, v in vars(args).items() if v is not None and v is not False and k != "model"}


def _mode(args) -> str:
    given = _given(args)
    chosen = [m for m in _MODE_SWITCH if m in given]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(_MODE_SWITCH[m] for m in chosen)} are separate modes: give one")
    if chosen:
        return chosen[0]
    if args.no_timing or args.device == "meta":
        return "count"
    return "profile"


def _check_flags(args, mode: str) -> None:
    extra = sorted(_given(args) - _MODE_FLAGS[mode] - {mode})
    if extra:
        flags = ", ".join("--" + name.replace("_", "-") for name in extra)
        where = {"count": "counting only (--no-timing or --device meta)", "profile": "a profile"}.get(
            mode, _MODE_SWITCH.get(mode))
        raise UsageError(f"{flags} {'does' if len(extra) == 1 else 'do'} not apply to {where}")
    if mode == "device_info" and args.model:
        raise UsageError("--device-info describes the device: give no model")
    if mode != "device_info" and not args.model:
        raise UsageError("a model name is required (or --device-info)")
    if args.sweep_budget is not None and not args.sweep:
        raise UsageError("--sweep-budget applies to --sweep")
    if mode in ("compare_dtypes", "ddp", "count") and args.batch and len(args.batch) > 1:
        what = _MODE_SWITCH.get(mode, "counting only (--no-timing or --device meta)")
        raise UsageError(f"{what} takes one batch size, got {len(args.batch)}")


def _timing_options(args, **fixed) -> TimingOptions:
    given = {"dtype": args.dtype, "train": args.train or None, "warmup": args.warmup,
             "warmup_time": args.warmup_time, "min_time": args.min_time, "threads": args.threads,
             "sweep": args.sweep or None, "sweep_budget": args.sweep_budget, "max_batch": args.max_batch or None,
             "channels_last": args.channels_last or None, "compile": args.compile or None,
             "per_layer": args.per_layer or None}
    return TimingOptions.of(**{k: v for k, v in {**given, **fixed}.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Parse, run one mode, render in --format to stdout or --output. Exit 0, 1 (the run
    failed) or 2 (the request is wrong); errors are one line on stderr, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mode = _mode(args)
        _check_flags(args, mode)
        result, pictures = _run(mode, args)
        if result is None:  # a DDP rank other than 0: rank 0 prints
            return 0
        for what, path in pictures:
            print(f"wrote {what} to {path}", file=sys.stderr)
        text = render(result, args.format or "table", depth=args.depth)
        if args.output:
            write_atomically(args.output, text)
            print(f"wrote {args.format or 'table'} report to {args.output}", file=sys.stderr)
        else:
            print(text, end="" if text.endswith("\n") else "\n")
        return 0
    except (UncountedOpsError, OSError, RuntimeError, MemoryError) as exc:  # the run failed
        if is_out_of_memory(exc) or is_out_of_memory(exc.__cause__):
            return _fail(ProfilerError(f"out of memory at batch {','.join(map(str, args.batch or [1]))}: "
                                       f"try a smaller --batch, or --device meta to count without memory"), 1)
        if isinstance(exc, ForwardError):
            return _fail(exc, 2)
        return _fail(exc, 1)
    except (ProfilerError, ValueError, TypeError) as exc:  # the request is wrong
        return _fail(exc, 2)
    except Exception as exc:  # noqa: BLE001 - a bug of ours or the model's: still one line
        if os.environ.get("TORCHPROF_LAB_DEBUG"):
            raise
        return _fail(ProfilerError(f"{type(exc).__name__}: {exc} (TORCHPROF_LAB_DEBUG=1 shows the traceback)"), 1)


def _fail(exc: BaseException, code: int) -> int:
    """One line on stderr; a failure that is not ours (torch's, the model's) is named by its type."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if code == 1 and not isinstance(exc, (ProfilerError, OSError)) and lines:
        text = f"{type(exc).__name__}: {text}"
    where = f"rank {os.environ['RANK']} failed: " if "RANK" in os.environ and code == 1 else ""
    print(f"torchprof_lab: error: {where}{text}", file=sys.stderr)
    return code


def _run(mode: str, args):
    """The library call for ``mode``: (the result to render, [(picture, path) written])."""
    if mode == "device_info":
        return device_info(args.device), []
    if mode == "ddp":
        return _ddp(args), []
    built = build_model(args.model, weights=args.weights, device=args.device)
    shape = args.input_shape or built.input_shape
    batches = args.batch or [1]
    if mode == "compare_dtypes":
        sample = _load_sample(args.sample_batch) if args.sample_batch else None
        notes = ["weights: random initialisation (no --weights): the errors and top-1 agreement describe an "
                 "untrained model"] if built.random_weights else []
        return compare_precision(built.model, None if sample is not None else shape, batches[0],
                                 dtypes=args.compare_dtypes, inputs=sample, name=built.name, notes=notes,
                                 options=_timing_options(
                                     args, min_time=0.5 if args.min_time is None else args.min_time,
                                     warmup=2 if args.warmup is None else args.warmup)), []
    timed = mode == "profile"
    if args.batch_plot and not (len(batches) > 1 or args.sweep):
        raise UsageError("--batch-plot draws several batch sizes: give --batch 1,8,64 or --sweep")
    report = profile(built.model, shape, batch_sizes=batches, timing=timed, device=args.device,
                     strict=args.strict, depth=args.depth, name=built.name,
                     backward=args.backward or args.train, options=_timing_options(args))
    pictures = []
    if args.roofline:
        pictures.append(("roofline", roofline_png(report, args.roofline, args.depth)))
    if args.batch_plot:
        pictures.append(("batch scaling", batch_scaling_png(report.timing, args.batch_plot)))
    return report, pictures


def _load_sample(path: str):
    try:
        sample = torch.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - unpickling raises anything; one line names the file
        raise OSError(f"cannot read --sample-batch {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(sample, torch.Tensor):
        raise UsageError(f"--sample-batch {path} holds a {type(sample).__name__}, not a tensor batch")
    return sample


def _ddp(args):
    """One rank of a torchrun job; rank 0 returns the report, the others None (they print nothing)."""
    if not args.train:
        raise UsageError("--ddp times a training step: add --train")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UsageError("--ddp runs under torchrun, e.g. torchrun --nproc_per_node 2 -m torchprof_lab "
                         f"{args.model} --train --ddp")
    built = build_model(args.model, weights=args.weights, device=None)
    return run_under_torchrun(lambda: built.model, args.input_shape or built.input_shape, (args.batch or [1])[0],
                              cuda=(args.device or "cpu").startswith("cuda"), threads=args.threads,
                              options=_timing_options(args, threads=None))
