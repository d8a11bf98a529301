"""The one precision table: every name a user may give for a precision, and what it means.

Counting, timing, the hardware peaks, the precision comparison and the CLI all read this
table, so 'bf16', 'bfloat16', 'BF16' and torch.bfloat16 are one precision everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """A precision as the profiler uses it."""

    name: str  # the canonical short name: 'fp32', 'bf16', ...
    dtype: torch.dtype  # the torch dtype tensors are held in (tf32 is fp32 held, tensor-core math)
    bytes: int  # bytes per element held
    tensor_cores: bool  # a GPU peak uses tensor cores for it by default
    tf32: bool  # the TF32 math flags are on for it
    floating: bool
    aliases: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("fp64", torch.float64, 8, False, False, True, ("float64", "double")),
    Precision("fp32", torch.float32, 4, False, False, True, ("float32", "float")),
    Precision("tf32", torch.float32, 4, True, True, True, ("tensorfloat32",)),
    Precision("fp16", torch.float16, 2, True, False, True, ("float16", "half")),
    Precision("bf16", torch.bfloat16, 2, True, False, True, ("bfloat16",)),
    Precision("fp8", torch.float8_e4m3fn, 1, True, False, True, ("float8", "float8_e4m3fn")),
    Precision("int8", torch.int8, 1, True, False, False, ("qint8",)),
)}

_BY_NAME = {alias: p for p in PRECISIONS.values() for alias in (p.name, *p.aliases)}
_BY_DTYPE = {p.dtype: p for p in reversed(list(PRECISIONS.values()))}  # fp32, not tf32, for float32
_BY_DTYPE[torch.qint8] = PRECISIONS["int8"]

# precisions a model can be timed in on a device (tf32 only where tensor cores exist)
TIMED = ("fp32", "tf32", "fp16", "bf16")


def precision(value, *, allowed: tuple[str, ...] | None = None) -> Precision:
    """The Precision for a name ('bf16', 'bfloat16', 'BF16'), a torch dtype or a Precision.

    ``allowed`` limits the canonical names accepted; anything else is a one-line ValueError.
    """
    if isinstance(value, Precision):
        found = value
    elif isinstance(value, torch.dtype):
        found = _BY_DTYPE.get(value)
    elif isinstance(value, str):
        found = _BY_NAME.get(value.strip().lower().removeprefix("torch."))
    else:
        found = None
    names = allowed or tuple(PRECISIONS)
    if found is None or found.name not in names:
        raise ValueError(f"unknown precision {value!r}: use one of {', '.join(names)} "
                         f"(or a torch dtype / full name such as bfloat16)")
    return found


def of_dtype(dtype: torch.dtype) -> Precision | None:
    """The Precision tensors of ``dtype`` are held in, or None (integer, bool, complex)."""
    return _BY_DTYPE.get(dtype)


def label(dtype: torch.dtype) -> str:
    """'bf16' for torch.bfloat16; the torch name for dtypes outside the table."""
    found = _BY_DTYPE.get(dtype)
    return found.name if found else str(dtype).removeprefix("torch.")
