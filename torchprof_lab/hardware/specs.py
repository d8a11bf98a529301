"""The GPU spec table (configs/gpu_specs.csv): load it, and find a GPU by any name it goes by."""

from __future__ import annotations

import csv
import difflib
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ProfilerError

def _config_dir() -> Path:
    """configs/ beside the package in a checkout (editable install), else where a wheel put it."""
    checkout = Path(__file__).resolve().parents[2] / "configs"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "torchprof_lab" / "configs"


CONFIG_DIR = _config_dir()
SPEC_FILE = CONFIG_DIR / "gpu_specs.csv"
SOURCE_FILE = CONFIG_DIR / "gpu_spec_sources.csv"

# dtype -> (per-SM ops/clock column, datasheet peak column) for CUDA cores and tensor cores
CUDA_CORE_COLUMNS = {"fp64": "fp64", "fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
TENSOR_CORE_COLUMNS = {"fp64": "fp64_tc", "tf32": "tf32_tc", "fp16": "fp16bf16_tc", "bf16": "fp16bf16_tc",
                       "fp8": "fp8_tc", "int8": "int8_tc"}


class UnknownGpuError(ProfilerError, KeyError):
    def __init__(self, name: str, suggestions: list[str]):
        self.name, self.suggestions = name, suggestions
        hint = f"; close matches: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"GPU '{name}' is not in {SPEC_FILE.name}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class GpuSpec:
    """One row of the spec table; per-SM values are dense FMA per clock (FLOPs = 2 x FMA)."""

    gpu: str
    aliases: tuple[str, ...]
    architecture: str
    compute_capability: str
    sms: int
    cuda_cores: int
    base_mhz: float | None
    boost_mhz: float
    memory_type: str
    bus_bits: int
    mem_gbps_per_pin: float
    bandwidth_gbs: float
    tdp_w: float
    per_sm: dict  # column suffix -> FMA/clock/SM
    datasheet_tflops: dict  # column suffix -> vendor dense TFLOPS
    notes: str
    sources: tuple[str, ...]

    def implied_mhz(self, column: str) -> float | None:
        """The clock at which the formula gives the vendor's figure for ``column``."""
        per_sm, tflops = self.per_sm.get(column), self.datasheet_tflops.get(column)
        if not per_sm or not tflops:
            return None
        return tflops * 1e12 / (self.sms * per_sm * 2) / 1e6


def normalise(name: str) -> str:
    """'NVIDIA A100-SXM4-40GB' -> 'A100SXM440GB': vendor words and punctuation dropped."""
    text = re.sub(r"\b(NVIDIA|GEFORCE|TESLA)\b", "", name.upper())
    return re.sub(r"[^A-Z0-9]", "", text)


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


@lru_cache(maxsize=1)
def load_specs() -> tuple[GpuSpec, ...]:
    specs = []
    with open(SPEC_FILE, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            specs.append(GpuSpec(
                gpu=row["gpu"], aliases=tuple(a.strip() for a in row["aliases"].split("|") if a.strip()),
                architecture=row["architecture"], compute_capability=row["compute_capability"],
                sms=int(row["sms"]), cuda_cores=int(row["cuda_cores"]), base_mhz=_number(row["base_mhz"]),
                boost_mhz=float(row["boost_mhz"]), memory_type=row["memory_type"], bus_bits=int(row["bus_bits"]),
                mem_gbps_per_pin=float(row["mem_gbps_per_pin"]), bandwidth_gbs=float(row["bandwidth_gbs"]),
                tdp_w=float(row["tdp_w"]),
                per_sm={k[3:]: float(v) for k, v in row.items() if k.startswith("sm_") and v.strip()},
                datasheet_tflops={k[3:]: float(v) for k, v in row.items() if k.startswith("pk_") and v.strip()},
                notes=row["notes"], sources=tuple(s for s in row["sources"].split("|") if s),
            ))
    return tuple(specs)


def load_sources() -> dict[str, str]:
    with open(SOURCE_FILE, newline="", encoding="utf-8") as fh:
        return {row["code"]: row["source"] for row in csv.DictReader(fh)}


def find_gpu(name: str) -> GpuSpec:
    """The row whose name or alias equals ``name`` once normalised (never a substring match:
    'L4' is inside 'L40S', 'A10' inside 'A100', 'H20' inside 'H200')."""
    wanted = normalise(name)
    for spec in load_specs():
        if wanted in {normalise(spec.gpu), *(normalise(a) for a in spec.aliases)}:
            return spec
    names = {normalise(a): a for spec in load_specs() for a in (spec.gpu, *spec.aliases)}
    close = difflib.get_close_matches(wanted, list(names), n=3, cutoff=0.6)
    raise UnknownGpuError(name, [names[c] for c in close])
