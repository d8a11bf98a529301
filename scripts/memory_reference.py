"""torch's own memory profiler on one training (or inference) step on the CPU: the reference
the memory predictions are checked against (tests/memory/, docs/memory.md).

    python scripts/memory_reference.py resnet18 --batch 8 --size 128 --optimizer sgd-momentum
    python scripts/memory_reference.py resnet18 --batch 8 --size 128 --inference
    python scripts/memory_reference.py vit-small --batch 8 --size 64 --optimizer adamw

Public API only: ``torch.profiler.profile(profile_memory=True, record_shapes=True, with_stack=True)``
and ``export_memory_timeline(path, device="cpu")``. A training model takes one step outside the
profiler first (it creates the optimizer state), then the second step is profiled.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile

from torchprof_lab.torch_internals import profiler_allocations

# the order of the profiler's categories in export_memory_timeline's sizes (index 0 unused)
CATEGORIES = ("parameters", "optimizer_state", "inputs", "temporary", "activations", "gradients",
              "autograd_detail", "unknown")


def profiler_peak(step, device: str = "cpu") -> tuple[int, dict[str, int], int]:
    """(peak bytes, bytes by category at the peak, peak bytes of the categorised allocations) of
    ``step()`` as torch's profiler sees it. The last leaves out the allocations the profiler cannot
    tie to a tensor: kernel-internal workspaces (oneDNN's convolution backward, for one), which no
    op returns and so no dispatch-level tracker sees."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "timeline.json")
        prof.export_memory_timeline(path, device=device)
        with open(path) as f:
            _, sizes = json.load(f)
    totals = [sum(s) for s in sizes]
    at = max(range(len(totals)), key=totals.__getitem__)
    live = tensors = peak_tensors = 0
    for delta, _, tied in profiler_allocations(prof, device):
        live += delta
        tensors += delta if tied else 0
        peak_tensors = max(peak_tensors, tensors)
    return totals[at], dict(zip(CATEGORIES, sizes[at][1:])), peak_tensors


def small_vit():
    import torchvision
    return torchvision.models.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=4,
                                                hidden_dim=128, mlp_dim=256)


def build(name: str):
    if name == "vit-small":
        return small_vit()
    import torchvision
    return getattr(torchvision.models, name)()


def optimizer_for(name: str, params):
    return {"sgd": lambda: torch.optim.SGD(params, lr=1e-3),
            "sgd-momentum": lambda: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
            "adam": lambda: torch.optim.Adam(params, lr=1e-3),
            "adamw": lambda: torch.optim.AdamW(params, lr=1e-3)}[name]()


def measure(model, x, *, train: bool, optimizer: str = "sgd-momentum") -> tuple[int, dict[str, int], int]:
    """The profiler's peak of the second training step (or of one no_grad forward)."""
    if not train:
        model.eval()

        def infer():
            with torch.no_grad():
                model(x)

        return profiler_peak(infer)
    model.train()
    opt = optimizer_for(optimizer, [p for p in model.parameters() if p.requires_grad])

    def step():
        model(x).float().sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    return profiler_peak(step)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--optimizer", default="sgd-momentum")
    p.add_argument("--inference", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    model = build(args.model)
    x = torch.randn(args.batch, 3, args.size, args.size)
    peak, by, known = measure(model, x, train=not args.inference, optimizer=args.optimizer)
    mib = 2 ** 20
    print(f"profiler peak {peak / mib:.2f} MiB: " + ", ".join(f"{k} {v / mib:.2f}" for k, v in by.items() if v))
    print(f"peak of the categorised allocations (kernel workspaces left out): {known / mib:.2f} MiB")


if __name__ == "__main__":
    main()
