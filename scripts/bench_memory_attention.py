"""Attention in meta memory predictions: the prediction for a CPU target beside the real CPU step.

torchvision's ViT runs attention inside nn.MultiheadAttention (F.multi_head_attention_forward), which
a function mode sees whole; the prediction swaps the functional SDPA global to follow the target's
kernel (docs/memory.md, "The kernel chosen"). GPT-2 trains with attention dropout, which the CPU runs
on the math path. Run: .venv/bin/python scripts/bench_memory_attention.py
"""

import time

import torch
import torchvision

import torchprof_lab


def row(name, model, shape=None, batch=None, inputs=None, train=False, optimizer=None):
    kwargs = dict(inputs=inputs, train=train, optimizer=optimizer, target="cpu")
    started = time.perf_counter()
    real = torchprof_lab.memory(model, shape, batch, **kwargs)
    meta = torchprof_lab.memory(model, shape, batch, device="meta", **kwargs)
    seconds = time.perf_counter() - started
    over = [n for n in meta.notes if "over-predicted" in n]
    print(f"| {name} | {'train, ' + optimizer if train else 'inference'} | {meta.peak_bytes / 2**20:.3f} | "
          f"{real.peak_bytes / 2**20:.3f} | {100 * (meta.peak_bytes / real.peak_bytes - 1):+.3f}% | "
          f"{meta.saved_bytes == real.saved_bytes} | {'yes' if over else 'no'} | {seconds:.1f} |")


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; MiB; the two runs' wall time in the last column")
    print("| model | step | meta, CPU target | CPU measured | meta vs CPU | saved bytes equal | 'over-predicted' note | s |")
    print("|---|---|---|---|---|---|---|---|")
    small = torchvision.models.VisionTransformer(image_size=64, patch_size=8, num_layers=2, num_heads=4,
                                                 hidden_dim=128, mlp_dim=256)
    row("small ViT (64 tokens, MHA)", small, (3, 64, 64), 8)
    row("small ViT (64 tokens, MHA)", small, (3, 64, 64), 8, train=True, optimizer="adamw")
    vit = torchvision.models.vit_b_16()
    row("vit_b_16, batch 4", vit, (3, 224, 224), 4)
    row("vit_b_16, batch 4", vit, (3, 224, 224), 4, train=True, optimizer="adamw")
    import transformers
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1000,
                                                                n_positions=128))
    row("GPT-2 (2 layers, attention dropout), 4 x 64 tokens", gpt2,
        inputs={"input_ids": torch.randint(0, 1000, (4, 64))}, train=True, optimizer="adamw")
