"""torchprof_lab: per-layer cost, speed and hardware use of PyTorch models."""

from .api import count, profile
from .hardware.info import device_info
from .hardware.peak import peak_bandwidth, peak_flops
from .precision import compare_precision
from .errors import ForwardError, ProfilerError, UncountedOpsError, UnknownModelError
from .report.records import LayerRecord, ProfileReport
from .report.timing_records import BenchmarkReport, BenchmarkRow
from .timing.benchmark import benchmark
from .timing.stats import LatencyStats

__all__ = [
    "count", "profile", "benchmark", "device_info", "peak_flops", "peak_bandwidth", "compare_precision",
    "ProfileReport", "LayerRecord", "BenchmarkReport", "BenchmarkRow", "LatencyStats",
    "ProfilerError", "ForwardError", "UncountedOpsError", "UnknownModelError",
]
__version__ = "0.1.0"
