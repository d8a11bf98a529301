"""torchprof_lab: per-layer cost, speed and hardware use of PyTorch models.

The public names load on first use (PEP 562), so importing the package, as pytest does for its
plugin in every run, does not import torch.
"""

import sys
import types

_PUBLIC = {
    ".api": ("count", "profile"),
    ".counting.registry": ("register_formula", "unregister_formula"),
    ".counting.result": ("LayerRecord",),
    ".dtypes": ("Precision", "precision"),
    ".generation": ("GenerationReport", "GenerationRow", "benchmark_generation"),
    ".errors": ("ForwardError", "ProfilerError", "UncountedOpsError", "UnknownModelError"),
    ".hardware.ceiling": ("Ceiling",),
    ".hardware.info": ("device_info",),
    ".hardware.peak": ("peak_bandwidth", "peak_flops"),
    ".llm": ("megatron_flops_per_iteration", "palm_flops_per_token", "profile_tokens", "token_inputs"),
    ".memory.api": ("memory",),
    ".memory.result": ("LayerMemory", "MemoryReport", "TimelinePoint"),
    ".precision_compare": ("compare_precision",),
    ".result": ("ProfileReport",),
    ".timing.benchmark": ("benchmark",),
    ".timing.options": ("TimingOptions",),
    ".timing.result": ("BenchmarkReport", "BenchmarkRow"),
    ".timing.stats": ("LatencyStats",),
    ".tracking.tracker": ("track", "Tracker"),
    ".tracking.result": ("TrackReport", "TrackFigures"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
_ALIASES = {"Profile": "ProfileReport"}

__all__ = sorted([*_WHERE, *_ALIASES])
__version__ = "0.1.0"


class _Package(types.ModuleType):
    """Importing the subpackage ``torchprof_lab.memory`` (or module ``.track``) would set the
    package attribute of that name to the module; the public name is the function."""

    def __setattr__(self, name, value):
        if name in _WHERE and isinstance(value, types.ModuleType):
            return  # the module stays in sys.modules under its full name
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    import importlib

    target = _ALIASES.get(name, name)
    if target not in _WHERE:
        raise AttributeError(f"module 'torchprof_lab' has no attribute '{name}'")
    value = getattr(importlib.import_module(_WHERE[target], __name__), target)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
