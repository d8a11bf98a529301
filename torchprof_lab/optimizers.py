"""The optimizer of a training step, from a name, an optimizer class or a factory of the
parameters: one resolver for timing and memory, so `--optimizer adamw` means one thing."""

from __future__ import annotations

import torch

NAMES = ("sgd", "sgd-momentum", "adam", "adamw")


def check_optimizer(spec) -> None:
    """A one-line ValueError unless ``spec`` is None, a known name, an optimizer class or a callable."""
    if spec is None or callable(spec) or (isinstance(spec, str) and spec.lower() in NAMES):
        return
    raise ValueError(f"optimizer must be one of {', '.join(NAMES)}, an optimizer class or a factory of the "
                     f"parameters, got {spec!r}")


def make_optimizer(spec, params: list, foreach: bool | None = None) -> tuple[torch.optim.Optimizer, str]:
    """(optimizer over ``params``, its name). None is SGD(lr=1e-3); ``foreach`` None leaves torch's
    default (foreach on CUDA, per-parameter on the CPU)."""
    check_optimizer(spec)
    spec = "sgd" if spec is None else spec
    extra = {} if foreach is None else {"foreach": foreach}
    if isinstance(spec, str):
        key = spec.lower()
        kinds = {"sgd": (torch.optim.SGD, {}), "sgd-momentum": (torch.optim.SGD, {"momentum": 0.9}),
                 "adam": (torch.optim.Adam, {}), "adamw": (torch.optim.AdamW, {})}
        cls, settings = kinds[key]
        return cls(params, lr=1e-3, **settings, **extra), key
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        try:
            return spec(params, **extra), spec.__name__
        except TypeError:  # an optimizer without the foreach switch
            return spec(params), spec.__name__
    made = spec(params)
    if not isinstance(made, torch.optim.Optimizer):
        raise ValueError(f"the optimizer factory returned a {type(made).__name__}, not a torch.optim.Optimizer")
    return made, type(made).__name__
