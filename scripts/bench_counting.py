"""Counting overhead: time to count / time of one plain forward, beside FlopCounterMode and fvcore.

Also the time and peak-RSS growth of counting vit_h_14 on the meta device (in a fresh process).
Every figure is a median over --repeats interleaved runs, on the CPU, batch 1, eval mode.

    .venv/bin/python scripts/bench_counting.py [--repeats 7] [--models resnet18,resnet50,...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
import torchvision
from tabulate import tabulate

import torchprof_lab

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "regnet_y_800mf", "densenet121",
          "convnext_tiny", "vit_b_16", "swin_t"]


def clock(fn) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e9


def forward(model, x):
    with torch.no_grad():
        model(x)


def ours(model, x):
    torchprof_lab.count(model, inputs=x)


def flop_counter_mode(model, x):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    counter.get_total_flops()


def fvcore(model, x):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        analysis.total()


def bench_model(name: str, repeats: int) -> dict:
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    tools = {"forward": forward, "torchprof_lab": ours, "FlopCounterMode": flop_counter_mode, "fvcore": fvcore}
    for fn in tools.values():  # warm-up: allocator, oneDNN primitives, jit caches
        fn(model, x)
    times: dict[str, list[float]] = {k: [] for k in tools}
    for _ in range(repeats):
        for key, fn in tools.items():
            times[key].append(clock(lambda: fn(model, x)))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, "forward_ms": med["forward"] * 1e3,
            **{k: med[k] / med["forward"] for k in ("torchprof_lab", "FlopCounterMode", "fvcore")}}


META_PROBE = r"""
import time, torch, torchvision, torchprof_lab

def status_kib(field):  # VmRSS: resident now; VmHWM: peak of this process image (ru_maxrss would
    with open("/proc/self/status") as fh:  # carry the parent's peak across fork/exec)
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

base = status_kib("VmRSS")
start = time.perf_counter()
with torch.device("meta"):
    model = torchvision.models.vit_h_14()
r = torchprof_lab.count(model, (3, 224, 224))
elapsed = time.perf_counter() - start
grow = max(status_kib("VmHWM"), status_kib("VmRSS")) - base
print(f"{elapsed:.3f} {grow / 1024:.1f} {r.macs / 1e9:.2f}")
"""


def bench_meta() -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, "-c", META_PROBE], capture_output=True, text=True, check=True)
    seconds, mib, gmacs = (float(v) for v in out.stdout.split())
    return seconds, mib, gmacs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    rows = [bench_model(name, args.repeats) for name in args.models.split(",")]
    table = [[r["model"], f"{r['forward_ms']:.1f}", f"{r['torchprof_lab']:.2f}x", f"{r['FlopCounterMode']:.2f}x",
              f"{r['fvcore']:.2f}x", f"{r['torchprof_lab'] / r['FlopCounterMode']:.2f}",
              f"{(r['torchprof_lab'] - 1) / (r['FlopCounterMode'] - 1):.2f}"] for r in rows]
    medians = [statistics.median(r[k] for r in rows) for k in ("torchprof_lab", "FlopCounterMode", "fvcore")]
    table.append(["median", "", *(f"{m:.2f}x" for m in medians), ""])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, 224x224, "
          f"median of {args.repeats} interleaved runs; ratios are time / plain no_grad forward")
    print(tabulate(table, headers=["model", "forward ms", "torchprof_lab", "FlopCounterMode", "fvcore",
                                   "ours / FlopCounterMode", "our overhead / its overhead"], tablefmt="github"))
    seconds, mib, gmacs = bench_meta()
    print(f"\nvit_h_14 on meta (build + count, fresh process): {seconds:.2f} s, "
          f"RSS growth over the imports (peak after minus resident before) {mib:.0f} MiB, {gmacs:.2f} GMACs")


if __name__ == "__main__":
    main()
