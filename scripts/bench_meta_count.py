"""Meta counting and meta memory prediction with and without counting/fast_meta.py's direct outputs.

Side by side in one process, interleaved, medians of --repeats: ``count(model, device="meta")`` of
torchvision models (batch 1, 224 px), ``memory(resnet50, batch 256, train=True, device="meta")`` and
that report's ``max_batch(24 GiB)`` (issue 11's speed targets: under 2 s and under 5 s).
"off" empties the table of direct outputs, so torch's meta kernels (Python decompositions for batch
norm, layer norm and many activations) run as before.

    .venv/bin/python scripts/bench_meta_count.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from tabulate import tabulate

import torchprof_lab
from torchprof_lab.counting import fast_meta

MODELS = ["resnet50", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_v2_l", "densenet201", "convnext_tiny",
          "vit_b_16", "swin_t"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(fn, repeats: int) -> tuple[float, float]:
    table, on, off = dict(fast_meta.FAST), [], []
    fn()
    for _ in range(repeats):
        off.append(timed(lambda: (fast_meta.FAST.clear(), fn())))
        fast_meta.FAST.update(table)
        on.append(timed(fn))
    return statistics.median(on), statistics.median(off)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for name in MODELS:
        with torch.device("meta"):
            model = getattr(torchvision.models, name)()
        on, off = side_by_side(lambda: torchprof_lab.count(model, (3, 224, 224), device="meta"), args.repeats)
        rows.append([f"count {name}", f"{off * 1e3:.1f}", f"{on * 1e3:.1f}", f"{off / on:.2f}x"])
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    predict = lambda: torchprof_lab.memory(model, (3, 224, 224), 256, train=True, device="meta")  # noqa: E731
    on, off = side_by_side(predict, max(3, args.repeats // 2))
    rows.append(["memory resnet50 train, batch 256", f"{off * 1e3:.1f}", f"{on * 1e3:.1f}", f"{off / on:.2f}x"])
    report = predict()
    on, off = side_by_side(lambda: report.max_batch(24 * 2**30), max(3, args.repeats // 2))
    rows.append([f"  its max_batch(24 GiB) = {report.max_batch(24 * 2**30)}", f"{off * 1e3:.1f}", f"{on * 1e3:.1f}",
                 f"{off / on:.2f}x"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats}")
    print(tabulate(rows, headers=["on meta", "torch's meta kernels ms", "direct outputs ms", "speed-up"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
