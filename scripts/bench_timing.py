"""Timing trustworthiness on the CPU, side by side in one run.

1. Our p50 against torch.utils.benchmark.Timer(...).blocked_autorange() median for resnet18 at
   batch 1, 8 and 32 (target: within 3%), measured alternately for --rounds rounds; the figure is the
   median of the per-round ratios, so drift of the machine between rounds cancels.
2. Wall time of a 6-point batch sweep of resnet18 (target < 60 s).
3. Run-to-run spread of our p50 across three repeats: (max - min) / median (target < 5%), beside
   torch's in the same rounds, so the machine's own drift can be told from ours.

--settle S first runs resnet18 for S seconds, so that every measurement happens after the CPU's
boost has ended (on the 2-core VM of docs/benchmarks.md it lasts 5-10 s after idle; a run that starts
inside it straddles two machine states).

    .venv/bin/python scripts/bench_timing.py [--min-time 1.0] [--rounds 5] [--settle 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from tabulate import tabulate
from torch.utils.benchmark import Timer

import torchprof_lab


def ours_p50(model, batch: int, min_time: float) -> float:
    b = torchprof_lab.benchmark(model, (3, 224, 224), [batch], min_time=min_time, warmup=3, progress=False)
    return b.rows[0].latency.p50


def torch_median(model, batch: int, min_time: float) -> float:
    x = torch.randn(batch, 3, 224, 224)
    timer = Timer(stmt="with torch.inference_mode(): model(x)", globals={"model": model, "x": x, "torch": torch},
                  num_threads=torch.get_num_threads())
    timer.timeit(3)  # warm-up
    return timer.blocked_autorange(min_run_time=min_time).median


def settle(model, seconds: float) -> None:
    """Keep the CPU busy with the benchmark's own work until its clock is in its sustained state."""
    x = torch.randn(8, 3, 224, 224)
    start = time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - start < seconds:
            model(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=0.0, help="seconds of load before measuring")
    args = parser.parse_args()
    model = torchvision.models.resnet18().eval()
    settle(model, args.settle)
    rows = []
    spreads = {}
    for batch in (1, 8, 32):
        ours, theirs = [], []
        for _ in range(args.rounds):  # alternate, so drift hits both alike
            ours.append(ours_p50(model, batch, args.min_time))
            theirs.append(torch_median(model, batch, args.min_time))
        o, t = statistics.median(ours), statistics.median(theirs)
        paired = statistics.median(a / b for a, b in zip(ours, theirs))
        spreads[batch] = (max(ours[:3]) - min(ours[:3])) / statistics.median(ours[:3])
        theirs_spread = (max(theirs[:3]) - min(theirs[:3])) / statistics.median(theirs[:3])
        rows.append([batch, f"{o * 1e3:.2f}", f"{t * 1e3:.2f}", f"{(paired - 1) * 100:+.1f}%",
                     f"{spreads[batch] * 100:.1f}% ({', '.join(f'{v * 1e3:.1f}' for v in ours[:3])})",
                     f"{theirs_spread * 100:.1f}% ({', '.join(f'{v * 1e3:.1f}' for v in theirs[:3])})"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, resnet18 224x224, eval, inference_mode; "
          f"min_time {args.min_time} s; {args.rounds} alternating rounds; settled {args.settle} s first")
    print(tabulate(rows, headers=["batch", "ours p50 ms (median)", "torch.utils.benchmark ms (median)",
                                  "difference (median paired ratio)", "our p50 spread, 3 repeats (ms)",
                                  "torch's spread, 3 repeats (ms)"], tablefmt="github"))
    start = time.perf_counter()
    sweep = torchprof_lab.benchmark(model, (3, 224, 224), [1, 2, 4, 8, 16, 32], min_time=args.min_time, progress=False)
    wall = time.perf_counter() - start
    print(f"\n6-point sweep (batch 1-32), min_time {args.min_time} s: {wall:.1f} s wall")
    print(sweep.to_table())


if __name__ == "__main__":
    main()
