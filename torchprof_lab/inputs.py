"""Example inputs: a user's inputs as call arguments, and the batch size they carry.

``inputs=`` may be a tensor, a tuple of positional arguments, a dict of keyword arguments, or
a callable ``batch_size -> inputs`` so that a sweep can make inputs for each size. A list of
tensors is one positional argument, a list of samples whose batch is its length
(torchvision's detection models take a list of images); any other list is positional
arguments, as a tuple.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .torch_internals import tree_leaves


def call_args(inputs) -> tuple[tuple, dict]:
    """A user's example input as (args, kwargs): a tensor, a tuple of args, a dict of kwargs;
    a list of tensors (a list of images) is one argument."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if _is_image_list(inputs):
        return (list(inputs),), {}
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    raise TypeError(f"inputs must be a tensor, a tuple/list of args, a dict of kwargs or a callable of the "
                    f"batch size, got {type(inputs).__name__}")


def _is_image_list(value) -> bool:
    """A list of tensors of one rank: samples (torchvision detection's images), not arguments."""
    return (isinstance(value, list) and len(value) > 0 and all(isinstance(t, torch.Tensor) for t in value)
            and len({t.dim() for t in value}) == 1)


def infer_batch(args: tuple, kwargs: dict) -> int | None:
    """The batch the call arguments carry, or None when it is ambiguous: the common first
    dimension of every tensor of rank >= 1 (a list of images counts its length)."""
    sizes = set()
    for value in (*args, *kwargs.values()):
        if _is_image_list(value):
            sizes.add(len(value))
            continue
        for t in tree_leaves(value):
            if isinstance(t, torch.Tensor) and t.dim() >= 1 and not t.is_nested:
                sizes.add(t.shape[0])
            elif isinstance(t, torch.Tensor) and t.is_nested:
                sizes.add(t.size(0))
    return sizes.pop() if len(sizes) == 1 else None


def batch_label_note(inputs, batch_size: int | None) -> str | None:
    """A note when ``batch_size`` labels fixed ``inputs`` whose tensors share another first dimension:
    a sequence-first layout (T, B, ...) is labelled so on purpose, a mistake should not pass unseen.
    None for no inputs or a callable of the batch size (it makes the batch it is asked for)."""
    if inputs is None or callable(inputs) or batch_size is None:
        return None
    found = infer_batch(*call_args(inputs))
    if found is None or found == batch_size:
        return None
    return (f"batch_size={batch_size} labels inputs whose tensors' first dimension is {found}: per-sample "
            f"figures divide by {batch_size} (right for sequence-first inputs; otherwise drop batch_size=)")


def batch_of(args: tuple, kwargs: dict, batch_size: int | None) -> int:
    """``batch_size`` if given, else the batch the inputs carry; a one-line error when neither
    says (tensors whose first dimensions differ)."""
    if batch_size is not None:
        check_batch_size(batch_size)
        return batch_size
    found = infer_batch(args, kwargs)
    if found is None:
        shapes = [tuple(t.shape) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
                  and not t.is_nested][:4]
        if not shapes:
            return 1
        raise ValueError(f"cannot tell the batch size of inputs with shapes {shapes}: pass batch_size= "
                         f"beside inputs=")
    return found


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def moved(t: torch.Tensor, device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``t`` on ``device``, a floating ``t`` in ``dtype`` if given. A meta copy keeps ``t``'s strides
    (``.to`` would make it contiguous): kernel choices read them, attention's among them."""
    dtype = dtype if dtype is not None and t.is_floating_point() else t.dtype
    if torch.device(device).type == "meta" and t.is_nested:
        raise ValueError("a nested tensor input cannot go to the meta device (torch has no meta nested tensors): "
                         "count it on its own device")
    if torch.device(device).type == "meta" and t.device.type != "meta" and t.layout == torch.strided:
        return torch.empty_strided(t.shape, t.stride(), dtype=dtype, device="meta").requires_grad_(t.requires_grad)
    return t.to(device=device, dtype=dtype)


def make_inputs(inputs, batch: int):
    """The inputs for ``batch``: called when ``inputs`` is a callable of the batch size."""
    if callable(inputs) and not isinstance(inputs, torch.Tensor):
        made = inputs(batch)
        if made is None:
            raise ValueError(f"inputs({batch}) returned None: the callable must return the model's inputs")
        return made
    return inputs


def check_shape(input_shape) -> tuple[int, ...]:
    """One sample's shape as a tuple of positive ints, or a one-line ValueError."""
    if isinstance(input_shape, (int, str)) or not isinstance(input_shape, (Sequence, torch.Size)):
        raise ValueError(f"input_shape must be a sequence of positive ints such as (3, 224, 224), got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be a sequence of positive ints such as (3, 224, 224), got {input_shape!r}")
    return shape
