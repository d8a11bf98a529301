"""Command line: parse arguments, call the library, print or write the report."""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import replace

import torch

from .api import profile
from .distributed import run_under_torchrun
from .dtypes import TIMED, precision
from .errors import ForwardError, ProfilerError, UncountedOpsError
from .generation import CACHES, benchmark_generation
from .hardware.info import device_info
from .memory.api import OPTIMIZERS
from .memory.budget import budget
from .llm import profile_tokens
from .models import build_model
from .precision_compare import compare_precision
from .report.plot import batch_scaling_png, roofline_png
from .report.render import FORMATS, render
from .report.trace import chrome_trace_json
from .report.write import check_folder, write_atomically
from .timing.benchmark import is_out_of_memory
from .timing.options import TimingOptions


def _positive_ints(text: str, example: str, separators: str = ",") -> tuple[int, ...]:
    """'3,224,224' -> (3, 224, 224) (commas, or any of ``separators``; spaces around a number are
    fine). Every part must be a positive integer, an empty one too: '1,,8' and '1,8,' are refused,
    never read as 1,8. Else an argparse error naming the bad part and ``example``."""
    expected = f"expected positive integers like {example}"
    values = []
    for part in text.split(","):
        pieces = re.split("|".join(map(re.escape, separators)), part, flags=re.IGNORECASE)
        for piece in pieces:
            if re.fullmatch(r"\s*[0-9]+\s*", piece, flags=re.ASCII) and int(piece) >= 1:
                values.append(int(piece))
                continue
            bad = piece.strip() or (part.strip() if len(pieces) > 1 and not "".join(pieces).strip() else "")
            if not bad:
                raise argparse.ArgumentTypeError(f"'{text}' has an empty part: {expected}")
            where = "" if bad == text.strip() else f" in '{text}'"
            raise argparse.ArgumentTypeError(f"'{bad}'{where} is not a positive integer: {expected}")
    return tuple(values)


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


def _seq_lens(text: str) -> list[int]:
    return list(_positive_ints(text, "128,1024"))


def _fit(text: str) -> tuple[str, int]:
    """--fit: (label, bytes) of a size or a GPU of the spec table, checked before any run."""
    try:
        return budget(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _key_value(text: str) -> tuple[str, object]:
    """'num_hidden_layers=2' -> ('num_hidden_layers', 2): ints, floats, true/false, none, else the string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected key=value such as num_hidden_layers=2, got '{text}'")
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    if lowered in ("none", "null"):
        return key.strip(), None
    for convert in (int, float):
        try:
            return key.strip(), convert(raw)
        except ValueError:
            pass
    return key.strip(), raw


_positive = _at_least(int, 1, "a positive integer")
_seconds = _at_least(float, 0.0, "a non-negative number of seconds")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors read as the tool's own: one line, 'torchprof_lab: error: ...',
    exit 2 (argparse prints the whole usage, some 24 lines, above its message)."""

    _LISTED = ("unrecognized arguments", "ambiguous option", "the following arguments are required")

    def error(self, message: str):
        text = " ".join(str(message).split())
        if any(what in text for what in self._LISTED):
            text += f" ({self.prog} --help lists the flags)"
        elif text.endswith("expected one argument"):  # the value may begin with '-', read as a flag
            flag = text.removeprefix("argument ").split(":")[0].split("/")[-1]
            text += f" (give a value; one that begins with '-' is written {flag}=VALUE)"
        self.exit(2, f"torchprof_lab: error: {text}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m torchprof_lab",
                description="Per-layer params, MACs, FLOPs and bytes of a PyTorch model.")
    p.add_argument("model", nargs="?", help="a torchvision model name (resnet50) or package.module:factory")
    p.add_argument("--device-info", action="store_true", help="describe the device (NVML on a GPU, else the CPU) and exit")
    p.add_argument("--batch", type=_batches, help="batch size, or sizes to time: 1,8,64 (default 1)")
    p.add_argument("--input-shape", type=_shape, help="one sample's shape, e.g. 3,224,224 "
                   "(default: the crop size of the model's weights)")
    p.add_argument("--depth", type=_positive, help="show layers down to this depth")
    p.add_argument("--format", choices=FORMATS, help="table (default), json, csv, markdown or html (one self-contained page); every mode")
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
    t.add_argument("--trace", metavar="JSON", help="write the per-layer pass (implies --per-layer) as a Chrome "
                   "trace for ui.perfetto.dev or chrome://tracing: a span per layer call per timed forward")
    t.add_argument("--roofline", metavar="PNG", help="draw the roofline with every layer to this PNG (matplotlib)")
    t.add_argument("--batch-plot", metavar="PNG",
                   help="draw samples/s and latency against batch size to this PNG (matplotlib); "
                        "pairs with --batch 1,8,64 or --sweep")
    k = p.add_argument_group("token models")
    k.add_argument("--config", type=_key_value, nargs="+", action="extend", metavar="KEY=VALUE",
                   help="override fields of an hf: model's config, e.g. num_hidden_layers=2 (ints, floats, "
                        "true/false parsed)")
    k.add_argument("--seq-len", type=_seq_lens, help="sequence length(s) of token-id inputs, e.g. 128,1024: "
                   "one timing row per (batch, sequence length); default 128 for hf: models")
    k.add_argument("--input-dtype", choices=("long", "int64"), help="long: the input is int64 token ids "
                   "(with --vocab) instead of a random float batch")
    k.add_argument("--vocab", type=_positive, help="token ids lie in [0, N) (default: an hf: model's vocab_size)")
    m = p.add_argument_group("memory")
    m.add_argument("--memory", action="store_true", help="add the peak memory of one step (inference, or with "
                   "--train a training step) by category and by layer")
    m.add_argument("--fit", type=_fit, metavar="SIZE|GPU", help="the largest batch whose predicted peak fits in a "
                   "CUDA GPU's memory: a size (24GiB, 16GB = 16e9 bytes) or a GPU of the spec table "
                   "(A100-SXM4-40GB); with --train, --dtype and --optimizer")
    m.add_argument("--optimizer", choices=OPTIMIZERS, help="the optimizer of the --memory/--fit training step "
                   "(default sgd)")
    d = p.add_argument_group("distributed")
    d.add_argument("--ddp", action=_Strategy, const="ddp", default=False, help="with --train under torchrun: time "
                   "the DistributedDataParallel step on every rank (gloo on CPU, NCCL on GPUs); rank 0 prints; with "
                   "--memory also each rank's memory (DDP's gradient buckets as comm_buffers)")
    d.add_argument("--fsdp", dest="ddp", action=_Strategy, const="fsdp2", help="as --ddp, with FSDP2 "
                   "(fully_shard on each child module with parameters, then the model): parameters, gradients and "
                   "optimizer state sharded across the ranks; with --memory each rank's shards, all-gathered "
                   "parameters and communication buffers")
    q = p.add_argument_group("precision")
    q.add_argument("--compare-dtypes", metavar="LIST", help="e.g. fp32,bf16,int8: speed-up over fp32 beside "
                   "output error and top-1 agreement (int8: dynamic quantization of Linear layers, CPU)")
    q.add_argument("--sample-batch", metavar="FILE", help="a tensor saved with torch.save to compare on "
                   "(default: random inputs)")
    g = p.add_argument_group("generation")
    g.add_argument("--generate", action="store_true", help="time greedy generation of a causal LM: prefill "
                   "(time to first token), each decode step, tokens/s, KV cache bytes, MFU/MBU")
    g.add_argument("--prompt-len", type=_positive, help="prompt tokens (default 128)")
    g.add_argument("--new-tokens", type=_at_least(int, 2, "an integer >= 2"), help="new tokens (default 64)")
    g.add_argument("--cache", choices=CACHES, help="the model's KV cache: dynamic (default) or static")
    return p


# the flags each mode takes (beside the model name); any other flag given is a usage error
_COMMON = {"format", "output"}
_MODE_FLAGS = {
    "device_info": _COMMON | {"device"},
    "compare_dtypes": _COMMON | {"batch", "input_shape", "weights", "device", "warmup", "warmup_time",
                                 "min_time", "threads", "sample_batch"},
    "ddp": _COMMON | {"batch", "input_shape", "weights", "device", "train", "dtype", "warmup", "warmup_time",
                      "min_time", "threads", "memory", "optimizer"},
    "count": _COMMON | {"batch", "input_shape", "depth", "device", "weights", "backward", "strict", "no_timing",
                        "train", "dtype"},
}
_TIMING_FLAGS = {"sweep", "sweep_budget", "max_batch", "warmup", "warmup_time", "min_time", "threads",
                 "channels_last", "compile", "per_layer", "roofline", "batch_plot", "trace"}
_MODE_FLAGS["count"] |= {"config", "seq_len", "input_dtype", "vocab"}  # token models (llm.py)
_MODE_FLAGS["profile"] = _MODE_FLAGS["count"] | _TIMING_FLAGS
_MEMORY_FLAGS = {"memory", "fit", "optimizer"}
_MODE_FLAGS["count"] = _MODE_FLAGS["count"] | _MEMORY_FLAGS
_MODE_FLAGS["profile"] = _MODE_FLAGS["profile"] | _MEMORY_FLAGS
_MODE_SWITCH = {"device_info": "--device-info", "compare_dtypes": "--compare-dtypes", "ddp": "--ddp"}
_MODE_FLAGS["generate"] = _COMMON | {"batch", "device", "dtype", "warmup", "warmup_time", "min_time", "threads",
                                     "compile", "prompt_len", "new_tokens", "cache", "config"}
_MODE_SWITCH["generate"] = "--generate"


class UsageError(ValueError):
    """A flag or value that does not fit the chosen mode: exit 2."""


def _given(args) -> set[str]:
    return {k for k, v in vars(args).items() if v is not None and v is not False and k != "model"}


def _mode(args) -> str:
    given = _given(args)
    chosen = [m for m in _MODE_SWITCH if m in given]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(_switch(args, m) for m in chosen)} are separate modes: give one")
    if chosen:
        return chosen[0]
    if args.no_timing or args.device == "meta":
        return "count"
    return "profile"


def _switch(args, mode: str) -> str:
    """How an error names ``mode``: the flag that chose it (--fsdp chooses the distributed mode
    as --ddp does), or what counting and profiling are."""
    named = {"count": "counting only (--no-timing or --device meta)", "profile": "a profile"}
    return "--fsdp" if mode == "ddp" and args.ddp == "fsdp2" else named.get(mode) or _MODE_SWITCH[mode]


def _check_flags(args, mode: str) -> None:
    extra = sorted(_given(args) - _MODE_FLAGS[mode] - {mode})
    if extra:
        flags = ", ".join("--" + name.replace("_", "-") for name in extra)
        where = _switch(args, mode)
        raise UsageError(f"{flags} {'does' if len(extra) == 1 else 'do'} not apply to {where}")
    if mode == "device_info" and args.model:
        raise UsageError("--device-info describes the device: give no model")
    if mode != "device_info" and not args.model:
        raise UsageError("a model name is required (or --device-info)")
    if args.optimizer and not args.train:
        raise UsageError("--optimizer sets the optimizer of a training step: add --train")
    if args.sweep_budget is not None and not args.sweep:
        raise UsageError("--sweep-budget applies to --sweep")
    if args.sweep and args.batch:
        raise UsageError("--sweep times powers of two from 1 up, so --batch would not be timed: give one of them")
    if mode in ("compare_dtypes", "ddp", "count") and args.batch and len(args.batch) > 1:
        what = _switch(args, mode)
        raise UsageError(f"{what} takes one batch size, got {len(args.batch)}")


def _check_folders(args) -> None:
    """Every file asked for can be written, checked before the run (not after minutes of it)."""
    for flag in ("output", "trace", "roofline", "batch_plot"):
        if getattr(args, flag):
            check_folder(getattr(args, flag), "--" + flag.replace("_", "-"))


def _timing_options(args, **fixed) -> TimingOptions:
    given = {"dtype": args.dtype, "train": args.train or None, "warmup": args.warmup,
             "warmup_time": args.warmup_time, "min_time": args.min_time, "threads": args.threads,
             "sweep": args.sweep or None, "sweep_budget": args.sweep_budget, "max_batch": args.max_batch or None,
             "channels_last": args.channels_last or None, "compile": args.compile or None,
             "per_layer": args.per_layer or bool(args.trace) or None,
             "optimizer": args.optimizer if args.train else None}
    return TimingOptions.of(**{k: v for k, v in {**given, **fixed}.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Parse, run one mode, render in --format to stdout or --output. Exit 0, 1 (the run
    failed) or 2 (the request is wrong); errors are one line on stderr, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mode = _mode(args)
        _check_flags(args, mode)
        _check_folders(args)
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
            _print_report(text)
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
        return _fail(ProfilerError(f"{type(exc).__name__}: {_first_line(str(exc))} "
                                       f"(TORCHPROF_LAB_DEBUG=1 shows the traceback)"), 1)


def _print_report(text: str) -> None:
    """The report on stdout; a reader that stopped early (``| head``) read what it wanted: no error.
    Only this write: a broken pipe anywhere else in the run fails it as any OSError does."""
    try:
        print(text, end="" if text.endswith("\n") else "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would raise again


def _fail(exc: BaseException, code: int) -> int:
    """One line on stderr; a failure that is not ours (torch's, the model's) is named by its type."""
    message = _first_line(str(exc))
    text = message or type(exc).__name__
    if code == 1 and not isinstance(exc, (ProfilerError, OSError)) and message:
        text = f"{type(exc).__name__}: {text}"
    where = f"rank {os.environ['RANK']} failed: " if "RANK" in os.environ and code == 1 else ""
    print(f"torchprof_lab: error: {where}{text}", file=sys.stderr)
    return code


def _first_line(message: str, limit: int = 300) -> str:
    """The message's first line. A first line that ends in ':' announces the next, so the next
    non-empty lines are joined on (pydantic-style "Validation error for field 'x':" then the
    reason) while the text ends in ':', what is joined cut at ``limit`` characters in all."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0]
    for line in lines[1:]:
        if not text.endswith(":") or len(text) >= limit:
            break
        text = f"{text} {line}"
    cut = max(limit, len(lines[0]))
    return text if len(text) <= cut else text[:cut - 3].rstrip() + "..."


def _run(mode: str, args):
    """The library call for ``mode``: (the result to render, [(picture, path) written])."""
    if mode == "device_info":
        return device_info(args.device), []
    if mode == "ddp":
        return _ddp(args), []
    if mode == "generate":
        return _generate(args), []
    built = build_model(args.model, weights=args.weights, device=args.device,
                        config=dict(args.config) if args.config else None)
    if built.config is not None and mode == "compare_dtypes":
        raise UsageError("--compare-dtypes compares image-style outputs; count or profile a transformers model")
    if mode in ("count", "profile") and (built.config is not None or args.seq_len or args.input_dtype
                                         or args.vocab):
        return _tokens(args, built, mode)
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
                     backward=args.backward or args.train, options=_timing_options(args),
                     memory=_memory_settings(args))
    return _with_fit(args, report), _pictures(args, report)


def _with_fit(args, report):
    """``report`` with the largest batch that fits --fit's budget, when --fit was given."""
    return replace(report, memory=report.memory.with_fit(*args.fit)) if args.fit else report


def _pictures(args, report) -> list[tuple[str, str]]:
    """The pictures asked for, drawn: [(what, path)]."""
    pictures = []
    if args.roofline:
        pictures.append(("roofline", roofline_png(report, args.roofline, args.depth)))
    if args.batch_plot:
        pictures.append(("batch scaling", batch_scaling_png(report.timing, args.batch_plot)))
    if args.trace:
        write_atomically(args.trace, chrome_trace_json(report))
        pictures.append(("the per-layer trace (ui.perfetto.dev)", args.trace))
    return pictures


def _tokens(args, built, mode: str):
    """A token model: int64 ids (and an attention mask for an hf: model), one row per (batch, seq)."""
    hf = built.config is not None
    if not hf and args.input_dtype is None:
        raise UsageError("--seq-len and --vocab make token ids: add --input-dtype long (and --vocab N)")
    if hf and args.input_shape:
        raise UsageError("--input-shape does not apply to a transformers model: give --seq-len")
    if not hf and args.vocab is None:
        raise UsageError("--input-dtype long needs --vocab N: token ids must lie inside the vocabulary")
    seqs = args.seq_len or ([args.input_shape[-1]] if args.input_shape and len(args.input_shape) == 1 else None)
    if seqs is None:
        if not hf:
            raise UsageError("--input-dtype long needs --seq-len (or a one-number --input-shape)")
        seqs = [128]
    if mode == "count" and len(seqs) > 1:
        raise UsageError(f"counting only (--no-timing or --device meta) takes one sequence length, got {len(seqs)}")
    report = profile_tokens(built.model, seqs, args.batch or [1], vocab_size=args.vocab, config=built.config,
                            mask=hf, plain=not hf, notes=built.notes, timing=mode == "profile",
                            device=args.device, strict=args.strict, depth=args.depth, name=built.name,
                            backward=args.backward or args.train, options=_timing_options(args),
                            memory=_memory_settings(args))
    return _with_fit(args, report), _pictures(args, report)


def _memory_settings(args):
    """profile()'s memory= for --memory / --fit: False, or the memory step's settings (for --fit a
    prediction on meta for a CUDA target: the budget is a GPU's)."""
    if not (args.memory or args.fit):
        return False
    settings = {"optimizer": args.optimizer} if args.optimizer else {}
    if args.fit:
        settings.update(target="cuda", device="meta")
    return settings or True


def _load_sample(path: str):
    try:
        sample = torch.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - unpickling raises anything; one line names the file
        raise OSError(f"cannot read --sample-batch {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(sample, torch.Tensor):
        raise UsageError(f"--sample-batch {path} holds a {type(sample).__name__}, not a tensor batch")
    return sample


class _Strategy(argparse.Action):
    """--ddp and --fsdp: the one distributed mode (``args.ddp``) with two strategies; give one."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) not in (None, False, self.const):
            parser.error("--ddp and --fsdp are two strategies of the distributed step: give one")
        setattr(namespace, self.dest, self.const)


def _ddp(args):
    """One rank of a torchrun job; rank 0 returns the report, the others None (they print nothing)."""
    flag = "--fsdp" if args.ddp == "fsdp2" else "--ddp"
    if not args.train:
        raise UsageError(f"{flag} times a training step: add --train")
    if args.model and args.model.startswith("hf:"):
        raise UsageError(f"{flag} times image-style inputs; count or profile a transformers model (--seq-len)")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UsageError(f"{flag} runs under torchrun, e.g. torchrun --nproc_per_node 2 -m torchprof_lab "
                         f"{args.model} --train {flag}")
    built = build_model(args.model, weights=args.weights, device=None)
    return run_under_torchrun(lambda: built.model, args.input_shape or built.input_shape, (args.batch or [1])[0],
                              cuda=(args.device or "cpu").startswith("cuda"), threads=args.threads,
                              options=_timing_options(args, threads=None), memory=args.memory,
                              shard=args.ddp == "fsdp2", name=built.name)


def _generate(args):
    """--generate: prefill and decode-step timing of a causal LM built from the model spec."""
    built = build_model(args.model, weights=args.weights, device=args.device,
                        config=dict(args.config) if args.config else None)
    return benchmark_generation(built.model, prompt_len=args.prompt_len or 128, new_tokens=args.new_tokens or 64,
                                batch_sizes=args.batch or [1], cache=args.cache or "dynamic", name=built.name,
                                options=_timing_options(args))
