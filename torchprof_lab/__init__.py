"""torchprof_lab: per-layer cost, speed and hardware use of PyTorch models."""

from .api import count, profile
from .counting.registry import register_formula, unregister_formula
from .counting.result import LayerRecord
from .dtypes import Precision, precision
from .generation import GenerationReport, GenerationRow, benchmark_generation
from .errors import ForwardError, ProfilerError, UncountedOpsError, UnknownModelError
from .hardware.ceiling import Ceiling
from .hardware.info import device_info
from .hardware.peak import peak_bandwidth, peak_flops
from .llm import megatron_flops_per_iteration, palm_flops_per_token, profile_tokens, token_inputs
from .memory.api import memory
from .memory.result import LayerMemory, MemoryReport, TimelinePoint
from .precision_compare import compare_precision
from .result import ProfileReport
from .timing.benchmark import benchmark
from .timing.options import TimingOptions
from .timing.result import BenchmarkReport, BenchmarkRow
from .timing.stats import LatencyStats

Profile = ProfileReport

__all__ = [
    "count", "profile", "benchmark", "benchmark_generation", "GenerationReport", "GenerationRow", "device_info", "peak_flops", "peak_bandwidth", "compare_precision",
    "register_formula", "unregister_formula", "precision", "Precision", "TimingOptions", "Ceiling",
    "Profile", "ProfileReport", "LayerRecord", "BenchmarkReport", "BenchmarkRow", "LatencyStats",
    "ProfilerError", "ForwardError", "UncountedOpsError", "UnknownModelError",
    "profile_tokens", "token_inputs", "palm_flops_per_token", "megatron_flops_per_iteration",
    "memory", "MemoryReport", "LayerMemory", "TimelinePoint",
]
__version__ = "0.1.0"
