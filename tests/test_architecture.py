"""The package's shape, checked: no import cycle between its modules (imports inside
functions included), and results that are values (frozen)."""

import ast
import dataclasses
from pathlib import Path

import pytest

import torchprof_lab
from torchprof_lab.distributed import DistributedReport, RankRow
from torchprof_lab.generation import GenerationReport, GenerationRow
from torchprof_lab.llm import TransformerShape
from torchprof_lab.hardware.info import DeviceInfo
from torchprof_lab.hardware.nvml import PowerSample, PowerSummary
from torchprof_lab.pytest_plugin import ModelFigures
from torchprof_lab.timing.result import ForwardSpans, LayerSpan
from torchprof_lab.tracking.result import TrackFigures, TrackReport
from torchprof_lab.precision_compare import PrecisionReport, PrecisionRow

PACKAGE = Path(torchprof_lab.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Package modules ``path`` imports anywhere in its body, functions included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py")]
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def test_the_import_graph_has_no_cycle():
    graph = {m: {d for d in deps if not d.endswith("__init__")} for m, deps in import_graph().items()}
    graph = {m: deps - {"torchprof_lab"} for m, deps in graph.items() if m != "torchprof_lab"}
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(trail[trail.index(dep):] + [dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "torchprof_lab.timing.result" in graph["torchprof_lab.result"]
    assert "torchprof_lab.report.render" in graph["torchprof_lab.timing.result"]
    assert not any(d.startswith("torchprof_lab.timing") or d.startswith("torchprof_lab.counting")
                   for d in graph["torchprof_lab.report.render"])  # report/ only renders


@pytest.mark.parametrize("cls", [torchprof_lab.ProfileReport, torchprof_lab.LayerRecord, torchprof_lab.BenchmarkRow,
                                 torchprof_lab.BenchmarkReport, torchprof_lab.LatencyStats, torchprof_lab.Ceiling,
                                 torchprof_lab.TimingOptions, torchprof_lab.Precision, DistributedReport, RankRow,
                                 PrecisionReport, PrecisionRow, DeviceInfo, torchprof_lab.MemoryReport,
                                 torchprof_lab.LayerMemory, torchprof_lab.TimelinePoint, GenerationReport,
                                 GenerationRow, TransformerShape, LayerSpan, ForwardSpans, PowerSample,
                                 PowerSummary, TrackReport, TrackFigures, ModelFigures])
def test_results_are_frozen_values(cls):
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


def test_the_package_and_its_pytest_plugin_import_without_torch():
    """pytest loads the plugin in every run of every project where torchprof_lab is installed."""
    import subprocess
    import sys

    code = "import sys, torchprof_lab, torchprof_lab.pytest_plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert torchprof_lab.count is torchprof_lab.api.count and torchprof_lab.Profile is torchprof_lab.ProfileReport
    assert set(torchprof_lab.__all__) <= set(dir(torchprof_lab))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        torchprof_lab.nope


def test_the_mappings_inside_results_are_read_only_and_still_pickle():
    """A frozen dataclass stops report.x = y; its dict fields refuse writes too (values.FrozenDict)."""
    import copy as copy_module
    import pickle

    from torch import nn

    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    r = torchprof_lab.profile(model, (8,), batch_sizes=[2], memory=True, min_time=0.01, warmup=0)
    for mapping in (r.uncounted_ops, r.memory.by_category, r.timing.settings, r.timing.environment,
                    r.timing.layer_latency, torchprof_lab.device_info("cpu").fields):
        with pytest.raises(TypeError, match="read-only"):
            mapping["written"] = 1
        with pytest.raises(TypeError):
            mapping.update(written=1)
    assert isinstance(r.memory.by_category, dict) and dict(r.memory.by_category)["parameters"] == 8 * 9 * 4
    assert r.memory.max_batch(2 ** 20) > 2  # it predicts other batches: it holds the model's step
    whole = pickle.loads(pickle.dumps(r))  # the whole profile, its memory report's predictor left behind
    copy = whole.memory
    assert copy.by_category == r.memory.by_category and copy.layers == r.memory.layers and copy == r.memory
    assert whole.layers == r.layers and whole.timing == r.timing
    with pytest.raises(ValueError, match="unpickled"):
        copy.max_batch(2 ** 20)
    assert r.memory.predictor is not None  # the original keeps its own
    assert copy_module.copy(r.memory).max_batch(2 ** 20) == copy_module.deepcopy(r).memory.max_batch(2 ** 20) > 2
    with pytest.raises(TypeError):
        copy.by_category["written"] = 1
    assert dataclasses.replace(r, notes=("a new value",)).uncounted_ops == r.uncounted_ops
