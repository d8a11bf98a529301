"""Peak memory of one step: ours (a meta prediction, and the same tracker on real CPU tensors)
beside torch's profiler, torch's MemTracker (on fake tensors) and torchinfo's "Estimated Total
Size"; then the time of a resnet50 prediction and of max_batch (docs/memory.md, docs/benchmarks.md).

    pip install torchinfo      # for this script only, not a dependency of the package
    cd scripts && python bench_memory.py

All figures are CPU steps in fp32 (torch's profiler measures the CPU): a training step is the
second of two (the first creates the optimizer state), an inference step one forward under
no_grad. MemTracker (``torch.distributed._tools.mem_tracker``) runs the same two steps on
FakeTensorMode tensors, its module statistics reset between them as it requires; its figure is its
"peak" snapshot's total. torchinfo's estimate is input + "forward/backward pass size" (every
layer's output, as if all were kept) + parameters: a formula, no optimizer, no gradients.
A tool that fails on a model is reported as failing, with its error's first line.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import torchprof_lab
from memory_reference import optimizer_for, profiler_peak, small_vit

MiB = 2 ** 20
GIB = 2 ** 30


def small_gpt2():
    import transformers
    config = transformers.GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1000, n_positions=128)
    return transformers.GPT2LMHeadModel(config)


def _images(batch, size):
    return lambda: {"x": torch.randn(batch, 3, size, size)}


def _ids(batch, seq):
    return lambda: {"input_ids": torch.randint(0, 1000, (batch, seq))}


def _logits_sum(out):
    return out.logits.float().sum()


def _sum(out):
    return out.float().sum()


CASES = [  # (label, builder, inputs (keyword arguments of a call), train, optimizer, loss of the output)
    ("resnet18 train, SGD momentum, batch 8, 128 px", torchvision.models.resnet18, _images(8, 128), True,
     "sgd-momentum", _sum),
    ("resnet18 inference, batch 8, 128 px", torchvision.models.resnet18, _images(8, 128), False, None, _sum),
    ("small ViT train, AdamW, batch 8, 64 px", small_vit, _images(8, 64), True, "adamw", _sum),
    ("small GPT-2 train, AdamW, batch 4, 64 tokens", small_gpt2, _ids(4, 64), True, "adamw", _logits_sum),
]


def _call(model, kwargs):
    return model(kwargs["x"]) if "x" in kwargs else model(**kwargs)


def _step(model, kwargs, train, optimizer, loss):
    """One step of the real model (eager, CPU) for the profiler and MemTracker."""
    if not train:
        model.eval()

        def infer():
            with torch.no_grad():
                _call(model, kwargs)
        return infer, None
    model.train()
    opt = optimizer_for(optimizer, [p for p in model.parameters() if p.requires_grad])

    def step():
        loss(_call(model, kwargs)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, opt


def ours(model, kwargs, train, optimizer, loss, device):
    inputs = kwargs["x"] if "x" in kwargs else kwargs
    extra = dict(optimizer=optimizer, loss_fn=loss) if train else {}
    return torchprof_lab.memory(model, inputs=inputs, train=train, device=device, target="cpu", **extra).peak_bytes


def profiler(model, kwargs, train, optimizer, loss):
    step, _ = _step(model, kwargs, train, optimizer, loss)
    if train:
        step()  # the optimizer state
    peak, _, tensors = profiler_peak(step)
    return peak, tensors


def mem_tracker(build, make_inputs, train, optimizer, loss):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker
    with FakeTensorMode():
        torch.manual_seed(0)
        model = build()
        kwargs = make_inputs()
        step, opt = _step(model, kwargs, train, optimizer, loss)
        tracker = MemTracker()
        tracker.track_external(model, *([opt] if opt is not None else []), *kwargs.values())
        with tracker:
            for _ in range(2 if train else 1):
                step()
                tracker.reset_mod_stats()
        return sum(snap["Total"] for snap in tracker.get_tracker_snapshot("peak").values())


def torchinfo_estimate(model, kwargs, train):
    import torchinfo
    stats = torchinfo.summary(model, input_data=kwargs["x"] if "x" in kwargs else dict(kwargs), verbose=0,
                              mode="train" if train else "eval")
    return stats.total_input + stats.total_output_bytes + stats.total_param_bytes


def _try(fn):
    try:
        return fn(), None
    except Exception as error:  # noqa: BLE001  a tool's failure is a result of the comparison
        return None, f"{type(error).__name__}: {str(error).splitlines()[0][:90] if str(error) else ''}"


def _mib(value):
    return "failed" if value is None else f"{value / MiB:.2f}"


def table() -> list[str]:
    rows = ["| model, step | ours, meta MiB | ours, CPU MiB | torch profiler peak MiB (tensors only) "
            "| MemTracker (fake) MiB | torchinfo estimate MiB | ours vs profiler |",
            "|---|---|---|---|---|---|---|"]
    failures = []
    for label, build, make_inputs, train, optimizer, loss in CASES:
        torch.manual_seed(0)
        model = build()
        kwargs = make_inputs()
        meta = ours(model, kwargs, train, optimizer, loss, "meta")
        cpu = ours(model, kwargs, train, optimizer, loss, None)
        tracked, error = _try(lambda: mem_tracker(build, make_inputs, train, optimizer, loss))
        if error:
            failures.append(f"MemTracker on {label}: {error}")
        estimate, error = _try(lambda: torchinfo_estimate(build(), kwargs, train))
        if error:
            failures.append(f"torchinfo on {label}: {error}")
        peak, tensors = profiler(model, kwargs, train, optimizer, loss)
        shown = f"{peak / MiB:.2f}" + (f" ({tensors / MiB:.2f})" if tensors != peak else "")
        rows.append(f"| {label} | {meta / MiB:.2f} | {cpu / MiB:.2f} | {shown} | {_mib(tracked)} | "
                    f"{_mib(estimate)} | {(meta / peak - 1) * 100:+.1f}% |")
    return rows + [""] + [f"- {f}" for f in failures]


def _median_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def speed(budget_gib: float) -> list[str]:
    model = torchvision.models.resnet50()
    kwargs = dict(train=True, device="meta")
    took, times, report = _median_time(lambda: torchprof_lab.memory(model, (3, 224, 224), 256, **kwargs))
    fit_took, fit_times, best = _median_time(lambda: report.max_batch(int(budget_gib * GIB)))
    return [f"memory(resnet50, (3, 224, 224), 256, train=True, device='meta'): median {took:.2f} s "
            f"(runs {', '.join(f'{t:.2f}' for t in times)}), peak {report.peak_bytes / GIB:.2f} GiB",
            f"max_batch({budget_gib:g} GiB) on that report: median {fit_took:.2f} s "
            f"(runs {', '.join(f'{t:.2f}' for t in fit_times)}), batch {best}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (the profiler's oneDNN workspaces grow "
                                                          "with them)")
    p.add_argument("--budget-gib", type=float, default=24.0, help="max_batch's budget for the resnet50 timing")
    p.add_argument("--skip-table", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    if not args.skip_table:
        print("\n".join(table()))
    if not args.skip_speed:
        print("\n".join(speed(args.budget_gib)))


if __name__ == "__main__":
    main()
