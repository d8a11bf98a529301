"""CPU scaling of the DDP training step, 1 vs 2 gloo processes, and the precision table, for resnet18.

    .venv/bin/python scripts/bench_distributed.py [--batch 8] [--size 224] [--min-time 3]

Each process gets cores / processes threads (torchrun's 1 thread each on this 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tabulate import tabulate


def ddp(processes: int, args) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               "-m", "torchprof_lab", "resnet18", "--input-shape", f"3,{args.size},{args.size}",
               "--batch", str(args.batch), "--train", "--ddp", "--min-time", str(args.min_time), "--format", "json"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out[out.index("{"):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--min-time", type=float, default=3.0)
    args = parser.parse_args()
    rows = []
    for processes in (1, 2):
        data = ddp(processes, args)
        rows.append([processes, data["backend"], data["ranks"][0]["threads"],
                     " / ".join(f"{r['latency_s']['p50'] * 1e3:.0f}" for r in data["ranks"]),
                     f"{data['total_samples_per_s']:.2f}", f"{data['single_samples_per_s']:.2f}",
                     f"{data['scaling_efficiency'] * 100:.1f}%", f"{data['allreduce_bytes_per_step'] / 1e6:.1f}",
                     " / ".join(f"{r['comm_s_per_step'] * 1e3:.0f}" for r in data["ranks"])])
    print(f"resnet18, 3x{args.size}x{args.size}, batch {args.batch} per rank, SGD step, min_time {args.min_time} s")
    print(tabulate(rows, headers=["processes", "backend", "threads/rank", "step p50 ms per rank", "total samples/s",
                                  "single-process samples/s (same run)", "scaling efficiency",
                                  "all-reduce MB/step/rank", "all-reduce ms/step per rank"], tablefmt="github"))
    precision = subprocess.run([sys.executable, "-m", "torchprof_lab", "resnet18", "--batch", str(args.batch),
                                "--compare-dtypes", "fp32,bf16,int8", "--min-time", "2"],
                               capture_output=True, text=True, check=True).stdout
    print("\n" + precision)


if __name__ == "__main__":
    main()
