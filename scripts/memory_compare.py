"""Our memory prediction (meta) and measurement (CPU, the same tracker) beside torch's profiler,
for the models of tests/memory/ (docs/memory.md's table):

    python scripts/memory_compare.py
"""

from __future__ import annotations

import time

import torch
import torchvision

import torchprof_lab
from memory_reference import measure, optimizer_for, profiler_peak, small_vit

MiB = 2 ** 20
CASES = [  # (label, builder, sample shape, batch, train, optimizer)
    ("resnet18 train, SGD momentum", torchvision.models.resnet18, (3, 128, 128), 8, True, "sgd-momentum"),
    ("resnet18 inference", torchvision.models.resnet18, (3, 128, 128), 8, False, None),
    ("small ViT train, AdamW", small_vit, (3, 64, 64), 8, True, "adamw"),
]


def small_gpt2():
    import transformers
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1000,
                                                                n_positions=128))


def gpt2_row() -> str:
    """The small GPT-2 with AdamW on int64 ids (batch 4, 64 tokens), through ``inputs=``."""
    torch.manual_seed(0)
    model = small_gpt2()
    ids = torch.randint(0, 1000, (4, 64))
    kwargs = dict(inputs={"input_ids": ids}, train=True, optimizer="adamw", target="cpu",
                  loss_fn=lambda out: out.logits.float().sum())
    start = time.perf_counter()
    predicted = torchprof_lab.memory(model, device="meta", **kwargs)
    took = time.perf_counter() - start
    measured = torchprof_lab.memory(model, **kwargs)
    model.train()
    opt = optimizer_for("adamw", list(model.parameters()))

    def step():
        model(input_ids=ids).logits.float().sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    peak, _, tensors = profiler_peak(step)
    return (f"| small GPT-2 train, AdamW, 64 tokens | 4 | {predicted.peak_bytes / MiB:.2f} | "
            f"{measured.peak_bytes / MiB:.2f} | {peak / MiB:.2f} | {tensors / MiB:.2f} | "
            f"{(predicted.peak_bytes / peak - 1) * 100:+.1f}% | {(predicted.peak_bytes / tensors - 1) * 100:+.1f}% | "
            f"{took:.2f} |")


def main() -> None:
    torch.set_num_threads(1)
    print("| model, step | batch | predicted (meta) MiB | measured (CPU, same tracker) MiB | profiler peak MiB "
          "| profiler tensors only MiB | predicted vs profiler | predicted vs tensors only | predict s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, build, shape, batch, train, optimizer in CASES:
        torch.manual_seed(0)
        model = build()
        kwargs = dict(train=train, target="cpu", **({"optimizer": optimizer} if train else {}))
        start = time.perf_counter()
        predicted = torchprof_lab.memory(model, shape, batch, device="meta", **kwargs)
        took = time.perf_counter() - start
        measured = torchprof_lab.memory(model, shape, batch, **kwargs)
        peak, _, tensors = measure(model, torch.randn(batch, *shape), train=train, optimizer=optimizer or "sgd")
        print(f"| {label} | {batch} | {predicted.peak_bytes / MiB:.2f} | {measured.peak_bytes / MiB:.2f} | "
              f"{peak / MiB:.2f} | {tensors / MiB:.2f} | {(predicted.peak_bytes / peak - 1) * 100:+.1f}% | "
              f"{(predicted.peak_bytes / tensors - 1) * 100:+.1f}% | {took:.2f} |")
    print(gpt2_row())


if __name__ == "__main__":
    main()
