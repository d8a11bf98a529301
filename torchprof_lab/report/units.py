"""How every rendering writes a number: decimal prefixes for counts and rates, binary units for
memory; and an output shape. A leaf: render.py and html.py both write them this way, and
render.py imports html.py."""

from __future__ import annotations


def si(value: float, unit: str = "") -> str:
    """4089184256 -> '4.09 G' (decimal prefixes, three significant figures)."""
    for threshold, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip() if isinstance(value, float) else f"{value} {unit}".rstrip()


def binary(value: int) -> str:
    """Bytes in binary units, as allocators and GPU memory sizes are given: '183.8 MiB'."""
    for threshold, unit in ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if abs(value) >= threshold:
            return f"{value / threshold:.1f} {unit}"
    return f"{value} B"


def shape_text(shape) -> str:
    """An output shape as every rendering writes it: (2, 8) -> '2x8'; None -> '-'; anything else as str."""
    if shape is None:
        return "-"
    return "x".join(str(d) for d in shape) if isinstance(shape, tuple) else str(shape)
