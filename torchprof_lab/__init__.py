"""torchprof_lab: per-layer cost, speed and hardware use of PyTorch models."""

from .api import count, profile
from .errors import ForwardError, ProfilerError, UncountedOpsError, UnknownModelError
from .report.records import LayerRecord, ProfileReport

__all__ = ["count", "profile", "ProfileReport", "LayerRecord", "ProfilerError", "ForwardError",
           "UncountedOpsError", "UnknownModelError"]
__version__ = "0.1.0"
