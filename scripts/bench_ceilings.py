"""The CPU's ceilings as the profiler sees them: the clock read and measured, the theoretical
peak per precision, the measured roofs (matmul and copy) with their spread, and resnet50's
utilisation against the peak in fp32 and bf16, so utilisation can be checked to stay under 100%.

    .venv/bin/python scripts/bench_ceilings.py [--repeats 3] [--budget 1.0]
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from tabulate import tabulate

import torchprof_lab
from torchprof_lab.hardware.clock_probe import measure_core_mhz
from torchprof_lab.hardware.cpu import cpu_info
from torchprof_lab.hardware.cpu_roofs import measure_cpu_ceilings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="independent roof measurements per precision")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per roof measurement")
    args = parser.parse_args()
    info = cpu_info()
    print(f"{info.model}, {info.physical_cores} cores, {torch.get_num_threads()} threads; clock "
          f"{info.max_mhz:.0f} MHz ({info.frequency_source}); probe alone: {measure_core_mhz():.0f} MHz")
    rows = []
    for dtype in ("fp32", "bf16"):
        peak = info.peak_flops(dtype)
        for repeat in range(args.repeats):
            m = measure_cpu_ceilings.__wrapped__(None, dtype, args.budget)
            rows.append([dtype, repeat + 1, f"{peak / 1e9:.0f}", f"{m.matmul_flops / 1e9:.0f}",
                         f"{m.matmul_flops / peak:.0%}", f"{m.matmul_n} {m.matmul_kernel}",
                         f"{m.matmul_spread:.1%}", f"{m.copy_bytes_per_s / 1e9:.1f}", f"{m.copy_spread:.1%}",
                         m.note if m.disturbed else "-"])
    print(tabulate(rows, headers=["dtype", "run", "peak GFLOP/s", "matmul GFLOP/s", "of peak", "n, kernel",
                                  "matmul spread", "copy GB/s", "copy spread", "disturbed"], tablefmt="github"))
    model = torchvision.models.resnet50()
    rows = []
    for dtype in ("fp32", "bf16"):
        for batch in (1, 8):
            r = torchprof_lab.profile(model, (3, 224, 224), batch_sizes=[batch], dtype=dtype, min_time=2.0,
                                      warmup_time=2.0, progress=False)
            row = r.timing.rows[0]
            rows.append([dtype, batch, f"{row.latency.p50 * 1e3:.1f}", f"{row.achieved_flops / 1e9:.0f}",
                         f"{r.timing.ceiling.peak_flops / 1e9:.0f}", f"{row.utilisation:.1%}",
                         f"{row.bytes_per_batch / 1e6:.0f}"])
    print("\nresnet50, 224x224, inference (each row counted on the work it timed)")
    print(tabulate(rows, headers=["dtype", "batch", "p50 ms", "achieved GFLOP/s", "peak GFLOP/s", "utilisation",
                                  "MB moved per batch"], tablefmt="github"))


if __name__ == "__main__":
    main()
