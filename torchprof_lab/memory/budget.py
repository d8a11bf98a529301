"""A memory budget from a size ('24GiB', '16GB', '40G') or a GPU name of the spec table."""

from __future__ import annotations

import csv
import re

from ..hardware.specs import SPEC_FILE, find_gpu

_UNITS = {"": 1, "B": 1, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
          "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "TIB": 2 ** 40, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}


def parse_size(text: str) -> int | None:
    """'24GiB' -> 24 * 2**30, '16GB' -> 16e9 (SI), '40G' -> 40 * 2**30; None if ``text`` is no size."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not found or found.group(2).upper() not in _UNITS:
        return None
    value = float(found.group(1)) * _UNITS[found.group(2).upper()]
    return int(value) if value >= 1 else None


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
    """(label, bytes) for --fit: a size, else a GPU name (an unknown one raises with suggestions)."""
    size = parse_size(text)
    if size is not None:
        return text.strip(), size
    gpu, size = gpu_memory_bytes(text)
    return f"{gpu} ({size / 2 ** 30:.0f} GiB)", size
