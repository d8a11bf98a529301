"""What following the target's attention kernel costs a meta count.

A meta count runs under ``target_kernels.TargetKernels`` (a torch function mode) so that
``scaled_dot_product_attention`` is counted as the model's device runs it. The mode sees every
torch function call; this measures that cost side by side, interleaved, medians of --repeats:
``count(model, device="meta")`` of torchvision models built on meta (batch 1, 224 px), with the
target (as shipped) and without it (meta's own math path).

    .venv/bin/python scripts/bench_meta_attention_target.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import torchprof_lab
from torchprof_lab import api

MODELS = ["resnet50", "vit_b_16", "swin_t"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    repeats = parser.parse_args().repeats
    shipped = api._attention_target
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats}")
    print("| model | without the target | with it | ratio |\n|---|---|---|---|")
    for name in MODELS:
        with torch.device("meta"):
            model = torchvision.models.get_model(name)
        torchprof_lab.count(model, (3, 224, 224), device="meta")
        times = {"off": [], "on": []}
        for _ in range(repeats):
            for key, target in (("off", lambda m: None), ("on", shipped)):
                api._attention_target = target
                start = time.perf_counter()
                torchprof_lab.count(model, (3, 224, 224), device="meta")
                times[key].append(time.perf_counter() - start)
        api._attention_target = shipped
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(f"| {name} | {off * 1e3:.1f} ms | {on * 1e3:.1f} ms | {on / off:.2f} |")


if __name__ == "__main__":
    main()
