"""A memory budget from a size ('24GiB', '16GB', '40G') or a GPU name of the spec table."""

from __future__ import annotations

import csv
import re

from ..hardware.specs import SPEC_FILE, UnknownGpuError, find_gpu

_UNITS = {"": 1, "B": 1, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
          "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "TIB": 2 ** 40, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}
UNIT_NAMES = "B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB or K, M, G (powers of 1024)"
EXAMPLE_GPUS = ("A100-SXM4-40GB", "H100-SXM5", "L4", "RTX-4090")  # names of the spec table, for messages


def parse_size(text: str) -> int | None:
    """'24GiB' -> 24 * 2**30, '16GB' -> 16e9 (SI), '40G' -> 40 * 2**30; None if ``text`` is no
    size: it does not start with a number (so it names a GPU). A size that is no budget raises
    ValueError: an unknown unit, zero or negative, less than a byte."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "0123456789.+-":
        return None
    found = re.fullmatch(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))\s*([A-Za-z]*)", stripped, flags=re.ASCII)
    if not found:
        raise ValueError(f"'{stripped}' is not a size: give a number and a unit, e.g. 24GiB or 16GB "
                         f"(units: {UNIT_NAMES})")
    number, unit = found.groups()
    if unit.upper() not in _UNITS:
        raise ValueError(f"unknown unit '{unit}' in '{stripped}': use {UNIT_NAMES}, e.g. 24GiB")
    value = float(number) * _UNITS[unit.upper()]
    if value < 1:
        raise ValueError(f"a memory budget must be a positive size (1 byte or more), got '{stripped}'")
    return int(value)


def gpu_memory_bytes(name: str) -> tuple[str, int]:
    """(the GPU's table name, its memory in bytes): the spec table's memory_gb column, the largest
    where it lists several ('16/32'); a GPU's 'GB' is binary (a 40 GB A100 holds 40 GiB of HBM)."""
    spec = find_gpu(name)
    with open(SPEC_FILE, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["gpu"] == spec.gpu:
                sizes = [float(v) for v in row["memory_gb"].split("/") if v.strip()]
                if sizes:
                    return spec.gpu, int(max(sizes) * 2 ** 30)
    raise ValueError(f"the spec table lists no memory size for {spec.gpu}")


def budget(text: str) -> tuple[str, int]:
    """(label, bytes) for --fit: a size (anything that starts with a number), else a GPU name.
    Raises ValueError in one line: a bad size, or a GPU the spec table does not know (with the
    close matches it does)."""
    size = parse_size(text)
    if size is not None:
        return text.strip(), size
    try:
        gpu, size = gpu_memory_bytes(text)
    except UnknownGpuError as exc:
        close = f" (close matches: {', '.join(exc.suggestions)})" if exc.suggestions else ""
        raise ValueError(f"unknown GPU '{text.strip()}'{close}: use a size like 24GiB or a GPU of the spec "
                         f"table, e.g. {', '.join(EXAMPLE_GPUS)} (python -m torchprof_lab --device-info "
                         f"names this machine's)") from exc
    return f"{gpu} ({size / 2 ** 30:.0f} GiB)", size
