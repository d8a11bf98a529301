"""How every rendering writes a number: decimal prefixes for counts and rates, binary units for
memory; and a layer's output shape. A leaf: render.py and html.py both write them this way, and
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
    """An output shape as every rendering writes it: (2, 8) -> '2x8'; a list or dict of them item
    by item ('[1x256x768, None]': a None output is 'None', not its type's name); None (no output
    recorded) -> '-'; anything else (a type name, a nested tensor's text) as str."""
    if shape is None:
        return "-"
    return _shape_item(shape)


def _shape_item(shape) -> str:
    if shape is None or shape == "None":
        return "None"
    if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
        return "x".join(str(d) for d in shape) if shape else "scalar"
    if isinstance(shape, (list, tuple)):
        return "[" + ", ".join(_shape_item(s) for s in shape) + "]"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_shape_item(v)}" for k, v in shape.items()) + "}"
    return str(shape)


def output_text(record) -> str:
    """A layer's Output cell: its output shape when it ran; '(container)' when it was not called
    itself but modules inside it were (a ModuleList its parent iterates); else '(not run)'."""
    if record.ran:
        return shape_text(record.output_shape)
    return "(container)" if getattr(record, "descendants_ran", False) else "(not run)"
