"""Leave the user's model as we found it: training flags restored, real tensors untouched."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager

import torch
from torch import nn

from .torch_internals import foreach_copy_, own_buffers


@contextmanager
def mode_restored(model: nn.Module, train: bool, modules: list[nn.Module] | None = None):
    """Put the model in train/eval mode for the block; restore each submodule's own flag after.

    ``modules`` (all of the model's modules) saves a walk of the module tree when the caller
    has one: on efficientnet_b0's 337 modules each walk costs 0.3-0.5 ms.
    """
    flags = [(m, m.training) for m in (model.modules() if modules is None else modules)]
    change = any(flag != train for _, flag in flags)
    try:
        if change:
            model.train(train)
        yield
    finally:
        for module, flag in flags:
            if module.training != flag:
                module.training = flag


def call_args(inputs) -> tuple[tuple, dict]:
    """A user's example input as (args, kwargs): a tensor, a tuple/list of args, or a dict of kwargs."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    raise TypeError(f"inputs must be a tensor, a tuple/list of args or a dict of kwargs, got {type(inputs).__name__}")


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


def meta_twins(model: nn.Module, cast: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Meta-device stand-ins (same shape, dtype, requires_grad) for every parameter and buffer,
    floating ones in ``cast`` if given, to run the model with through
    torch.func.functional_call: nothing is allocated."""
    def twin(t):
        dtype = cast if cast is not None and t.is_floating_point() else t.dtype
        return torch.empty_like(t, device="meta", dtype=dtype)

    twins: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if not p.is_meta or cast is not None:
            twins[name] = twin(p).requires_grad_(p.requires_grad)
    for name, b in model.named_buffers():
        if not b.is_meta or cast is not None:
            twins[name] = twin(b)
    return twins


@contextmanager
def buffers_restored(model: nn.Module, modules: list[nn.Module] | None = None):
    """Undo in-place writes to buffers (batch-norm running statistics in training mode).

    Every buffer is copied back: kernels such as batch norm update running statistics
    without bumping the tensor's version counter, so a change cannot be detected cheaply.
    """
    if modules is None:
        buffers = [b for b in model.buffers() if not b.is_meta]
    else:  # shared buffers once, as model.buffers() gives them
        unique = {id(b): b for m in modules for _, b, _ in own_buffers(m) if not b.is_meta}
        buffers = list(unique.values())
    saved = [b.detach().clone() for b in buffers]
    try:
        yield
    finally:
        if buffers:
            with torch.no_grad():
                foreach_copy_(buffers, saved)  # one call: 0.05 ms for 147 buffers, a loop 0.10
