"""Leave the user's model as we found it: training flags restored, real tensors untouched."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def mode_restored(model: nn.Module, train: bool):
    """Put the model in train/eval mode for the block; restore each submodule's own flag after."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.train(train)
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def check_device(device) -> torch.device:
    """A torch.device for ``device``, or a ValueError saying why it cannot be used here."""
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device '{device}': use cpu, cuda, cuda:N or meta") from exc
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' asked for, but CUDA is not available on this machine; "
                         "use device='cpu', or 'meta' to count without running")
    return wanted


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (or buffers) live; CPU for a model with neither."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def floating_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the first floating-point parameter: the dtype random inputs should have."""
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def stand_ins(model: nn.Module, meta: bool) -> dict[str, torch.Tensor]:
    """Tensors to run with in place of the model's own (via torch.func.functional_call).

    On meta: every parameter and buffer gets a meta twin (same shape, dtype, requires_grad),
    so nothing is allocated or computed. On a real device: buffers get clones, so training-mode
    updates (batch-norm running statistics) land on the copies, never on the model.
    """
    tensors: dict[str, torch.Tensor] = {}
    if meta:
        for name, p in model.named_parameters():
            if not p.is_meta:
                tensors[name] = torch.empty_like(p, device="meta").requires_grad_(p.requires_grad)
    for name, b in model.named_buffers():
        if meta and not b.is_meta:
            tensors[name] = torch.empty_like(b, device="meta")
        elif not meta:
            tensors[name] = b.detach().clone()
    return tensors
