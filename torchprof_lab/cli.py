"""Command line: parse arguments, call the library, print or write the report."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from .api import profile
from .hardware.info import device_info
from .report.plot import batch_scaling_png, roofline_png
from .errors import ProfilerError, UncountedOpsError
from .models import build_model
from .precision import compare_precision

FORMATS = ("table", "json", "csv", "markdown")


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
    """An argparse type: ``convert(text)`` that must be >= ``minimum``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return value

    return parse


_positive = _at_least(int, 1, "a positive integer")
_seconds = _at_least(float, 0.0, "a non-negative number of seconds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m torchprof_lab",
                                description="Per-layer params, MACs, FLOPs and bytes of a PyTorch model.")
    p.add_argument("model", nargs="?", help="a torchvision model name (resnet50) or package.module:factory")
    p.add_argument("--device-info", action="store_true", help="describe the device (NVML on a GPU, else the CPU) and exit")
    p.add_argument("--batch", type=_batches, default=[1], help="batch size, or sizes to time: 1,8,64 (default 1)")
    p.add_argument("--input-shape", type=_shape, help="one sample's shape, e.g. 3,224,224 "
                   "(default: the crop size of the model's weights)")
    p.add_argument("--depth", type=_positive, help="show layers down to this depth")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", help="write the report to this file instead of stdout")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or meta (count without running arithmetic)")
    p.add_argument("--weights", help="torchvision weights to load (e.g. DEFAULT); none by default")
    p.add_argument("--backward", action="store_true", help="also count a backward pass (training cost)")
    p.add_argument("--strict", action="store_true", help="fail if any op has no cost formula")
    t = p.add_argument_group("timing")
    t.add_argument("--no-timing", action="store_true", help="count only, time nothing")
    t.add_argument("--sweep", action="store_true", help="time powers of two until memory or --sweep-budget runs out")
    t.add_argument("--sweep-budget", type=_seconds, default=120.0, help="seconds a sweep may take (default 120)")
    t.add_argument("--max-batch", action="store_true", help="binary-search the largest batch that fits")
    t.add_argument("--train", action="store_true", help="time a training step (forward, loss, backward, SGD step)")
    t.add_argument("--dtype", choices=("fp32", "fp16", "bf16", "tf32"), default="fp32")
    t.add_argument("--warmup", type=_at_least(int, 0, "a non-negative integer"), default=3,
                   help="warm-up runs per batch size (default 3)")
    t.add_argument("--warmup-time", type=_seconds, default=0.5,
                   help="minimum seconds of warm-up per batch size (default 0.5); raise it when a row "
                        "warns of drift, e.g. on a CPU whose boost clock ends after some seconds of load")
    t.add_argument("--min-time", type=_seconds, default=1.0, help="seconds of timed runs per batch size (default 1)")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device_info:
        try:
            info = device_info(args.device)
        except (ProfilerError, ValueError, RuntimeError) as exc:
            print(f"torchprof_lab: error: {exc}", file=sys.stderr)
            return 2
        print(info.to_json() if args.format == "json" else info)
        return 0
    if args.model is None:
        parser.error("a model name is required (or --device-info)")
    if args.compare_dtypes:
        return _compare_dtypes(args)
    if args.ddp:
        return _ddp(args)
    try:
        if args.batch_plot and (args.no_timing or args.device == "meta"):
            raise ValueError("--batch-plot draws timing rows: drop --no-timing and --device meta")
        built = build_model(args.model, weights=args.weights, device=args.device)
        report = profile(built.model, args.input_shape or built.input_shape, batch_sizes=args.batch,
                         timing=not args.no_timing, device=args.device, train=args.train, strict=args.strict,
                         depth=args.depth, name=built.name, dtype=args.dtype, warmup=args.warmup,
                         warmup_time=args.warmup_time, min_time=args.min_time, sweep=args.sweep, sweep_budget=args.sweep_budget,
                         max_batch=args.max_batch, threads=args.threads, channels_last=args.channels_last,
                         compile=args.compile, per_layer=args.per_layer, backward=args.backward or args.train)
        if args.roofline:
            roofline_png(report, args.roofline, args.depth)
            print(f"wrote roofline to {args.roofline}", file=sys.stderr)
        if args.batch_plot:
            batch_scaling_png(report.timing, args.batch_plot)
            print(f"wrote batch scaling to {args.batch_plot}", file=sys.stderr)
    except UncountedOpsError as exc:
        print(f"torchprof_lab: error: {exc}", file=sys.stderr)
        return 1
    except (ProfilerError, ValueError, TypeError) as exc:
        print(f"torchprof_lab: error: {exc}", file=sys.stderr)
        return 2
    text = {"table": report.to_table, "json": report.to_json, "csv": report.to_csv,
            "markdown": report.to_markdown}[args.format]()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        print(f"wrote {args.format} report to {args.output}", file=sys.stderr)
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _compare_dtypes(args) -> int:
    try:
        built = build_model(args.model, weights=args.weights, device=args.device)
        sample = torch.load(args.sample_batch, map_location="cpu") if args.sample_batch else None
        report = compare_precision(built.model, None if sample is not None else args.input_shape or built.input_shape,
                                   args.batch[0], dtypes=[d.strip() for d in args.compare_dtypes.split(",") if d.strip()],
                                   inputs=sample, min_time=args.min_time, warmup=args.warmup, name=built.name)
        if built.random_weights:
            report.notes.insert(0, "weights: random initialisation (no --weights): the errors and top-1 "
                                   "agreement describe an untrained model")
    except (ProfilerError, ValueError, TypeError, OSError) as exc:
        print(f"torchprof_lab: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.format == "json" else report)
    return 0


def _ddp(args) -> int:
    """One rank of a torchrun job; the report goes to rank 0's stdout."""
    import os

    from .distributed import run_under_torchrun

    if not args.train:
        print("torchprof_lab: error: --ddp times a training step: add --train", file=sys.stderr)
        return 2
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print("torchprof_lab: error: --ddp runs under torchrun, e.g. torchrun --nproc_per_node 2 -m torchprof_lab "
              f"{args.model} --train --ddp", file=sys.stderr)
        return 2
    rank = os.environ["RANK"]
    try:
        built = build_model(args.model, weights=args.weights, device=None)
        report = run_under_torchrun(lambda: built.model, args.input_shape or built.input_shape, args.batch[0],
                                    cuda=(args.device or "cpu").startswith("cuda"), threads=args.threads,
                                    min_time=args.min_time, warmup=args.warmup, name=built.name)
    except Exception as exc:  # noqa: BLE001 - one line per failing rank; torchrun then stops the others
        print(f"torchprof_lab: error: rank {rank} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if report is not None:
        print(json.dumps(report.to_dict(), indent=2) if args.format == "json" else report)
    return 0
