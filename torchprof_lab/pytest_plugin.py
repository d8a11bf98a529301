"""The pytest plugin (entry point ``pytest11``): model budgets in tests, and a baseline file that
fails CI when a model gets heavier (docs/pytest_plugin.md).

Every pytest run in an environment with torchprof_lab installed loads this module, so it imports
only the standard library and pytest at the top; torch and torchprof_lab are imported when a test
first calls ``torchprof.check``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import pytest

BASELINE_FORMAT = "torchprof_lab.baseline/1"
DEFAULT_TOLERANCE = 0.01
BUDGETS = ("max_params", "max_macs", "max_flops", "max_peak_memory", "max_latency_ms")
BASELINE_FIGURES = ("params", "macs", "peak_memory")  # what a baseline guards; flops is recorded for reading
# a short timing: enough runs for a stable median of a small model, a fraction of a second in all
LATENCY_TIMING = dict(warmup=2, warmup_time=0.05, min_time=0.1, min_runs=5, max_runs=1000, max_time=2.0,
                      progress=False)


@dataclass(frozen=True)
class ModelFigures:
    """What one ``torchprof.check`` measured: counts of one forward at ``batch_size`` (on meta),
    the predicted peak memory of inference in bytes (None unless a memory budget or a baseline asked
    for it) and the median latency in ms (None unless ``max_latency_ms`` asked for it)."""

    name: str
    batch_size: int
    params: int
    macs: int
    flops: int
    peak_memory: int | None = None
    latency_ms: float | None = None


# ---------------------------------------------------------------------------------- options
def pytest_addoption(parser):
    group = parser.getgroup("torchprof", "torchprof_lab model budgets")
    group.addoption("--torchprof-baseline", metavar="FILE", default=None,
                    help="record the figures of each model checked with the torchprof fixture in FILE (JSON) on "
                         "the first run; fail later runs where its MACs, params or peak memory grew")
    group.addoption("--torchprof-tolerance", metavar="GROWTH", default=None,
                    help="growth over the baseline that still passes: a percent ('1%%') or a fraction ('0.01'); "
                         "default 1%%")
    group.addoption("--torchprof-update-baseline", action="store_true", default=False,
                    help="write every checked model's figures into the baseline, lighter or heavier")


def parse_tolerance(text: str) -> float:
    """'1%' or '0.01' -> 0.01. A bare number is a fraction below 1 (so '1' is not taken for 100%)."""
    value = str(text).strip()
    percent = value.endswith("%")
    try:
        number = float(value[:-1] if percent else value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (not percent and number >= 1):
        raise ValueError(f"--torchprof-tolerance must be a percent such as 1% or a fraction below 1 such as 0.01, "
                         f"got {text!r}")
    return number / 100 if percent else number


_SESSION = pytest.StashKey["_Session"]()


def pytest_configure(config):
    path = config.getoption("torchprof_baseline")
    tolerance = config.getoption("torchprof_tolerance")
    update = config.getoption("torchprof_update_baseline")
    if path is None and (tolerance is not None or update):
        given = "--torchprof-tolerance" if tolerance is not None else "--torchprof-update-baseline"
        raise pytest.UsageError(f"{given} applies to a baseline: add --torchprof-baseline FILE")
    try:
        growth = DEFAULT_TOLERANCE if tolerance is None else parse_tolerance(tolerance)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if path is not None and os.environ.get("PYTEST_XDIST_WORKER"):  # each worker would write the whole file
        raise pytest.UsageError("--torchprof-baseline records from one process: run it without -n")
    baseline = None
    if path is not None:
        try:
            baseline = Baseline(path, growth, update)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[_SESSION] = _Session(baseline)


def pytest_sessionfinish(session):
    state = session.config.stash.get(_SESSION, None)
    if state is None or state.baseline is None or not state.baseline.changed:
        return
    try:
        state.baseline.write()
    except OSError as exc:
        state.write_error = f"torchprof: baseline not saved: {exc}"
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    state = config.stash.get(_SESSION, None)
    if state is None or state.baseline is None:
        return
    if state.write_error:
        terminalreporter.write_line(state.write_error, red=True)
    elif state.baseline.changed:
        b = state.baseline
        terminalreporter.write_line(f"torchprof: baseline {b.path}: {b.recorded} model(s) recorded, "
                                    f"{b.updated} updated")


@pytest.fixture
def torchprof(request):
    """Check a model against budgets (and the session's baseline): ``torchprof.check(model, shape, ...)``."""
    state = request.config.stash.get(_SESSION, None)
    return ModelBudgets(request.node.nodeid, state.baseline if state is not None else None)


class _Session:
    """What one pytest session holds: its baseline (or None) and the error of writing it."""

    def __init__(self, baseline):
        self.baseline = baseline
        self.write_error = None


# ---------------------------------------------------------------------------------- the check
class ModelBudgets:
    """The ``torchprof`` fixture: ``check`` measures a model and fails the test on a budget or growth."""

    def __init__(self, nodeid: str, baseline: "Baseline | None"):
        self._nodeid = nodeid
        self._baseline = baseline
        self._checked: set[str] = set()

    def check(self, model, input_shape, *, batch_size: int = 1, max_params=None, max_macs=None, max_flops=None,
              max_peak_memory=None, max_latency_ms=None, device=None, name: str | None = None) -> ModelFigures:
        """Measure ``model`` on one sample of ``input_shape`` (a batch of ``batch_size``) and fail the
        test, in one line, naming every budget exceeded and any baseline figure that grew.

        Params, MACs and FLOPs of one forward are counted on meta stand-ins (the model is not run
        and not moved). Peak memory (bytes; asked by ``max_peak_memory`` or a baseline) is inference
        predicted on meta for CUDA's allocator when ``device`` (default: the model's device) is cuda,
        else for the CPU's. ``max_latency_ms`` times inference on ``device`` (default: the model's
        device, the CPU for most tests), where the model must already be: a short timing, its median. ``name`` (default: the class name) names the model in failures
        and in the baseline, so one test may check several models. The model is left as it was.
        """
        limits = _checked_budgets(max_params=max_params, max_macs=max_macs, max_flops=max_flops,
                                  max_peak_memory=max_peak_memory, max_latency_ms=max_latency_ms)
        where = _checked_device(device)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        import torchprof_lab
        from torchprof_lab.inputs import check_shape
        from torchprof_lab.model_state import model_device
        from torchprof_lab.timing.options import TimingOptions

        input_shape = check_shape(input_shape)
        label = name or type(model).__name__
        if label in self._checked:
            raise ValueError(f"model '{label}' was already checked in this test: pass name= to tell the checks apart")
        counted = torchprof_lab.count(model, input_shape, batch_size, device="meta", name=label)
        self._checked.add(label)
        peak = None
        if max_peak_memory is not None or self._baseline is not None:
            home = where or model_device(model)
            target = "cuda" if home.type == "cuda" else "cpu"
            peak = torchprof_lab.memory(model, input_shape, batch_size, device="meta", target=target,
                                        name=label).peak_bytes
        latency = None
        if max_latency_ms is not None:
            bench = torchprof_lab.benchmark(model, input_shape, [batch_size], device=where, name=label,
                                            options=TimingOptions(**LATENCY_TIMING))
            row = bench.rows[0]
            if not row.ok:
                pytest.fail(f"torchprof: {label} ran out of memory on {bench.device} at batch {batch_size} "
                            f"while timed for max_latency_ms", pytrace=False)
            latency = row.latency.p50 * 1e3
        figures = ModelFigures(name=label, batch_size=counted.batch_size, params=counted.params, macs=counted.macs,
                               flops=counted.flops, peak_memory=peak, latency_ms=latency)
        problems = exceeded(figures, limits)
        if self._baseline is not None:
            grown = self._baseline.compare(self._nodeid, figures, input_shape)
            if grown:
                problems.append(grown)
        if problems:
            pytest.fail("torchprof: " + "; ".join(problems), pytrace=False)
        return figures


def _checked_budgets(**budgets) -> dict:
    """The budgets given, each a finite number >= 0 (a ValueError names the one that is not)."""
    for budget, value in budgets.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{budget} must be a finite number >= 0, got {value!r}")
    return {b: v for b, v in budgets.items() if v is not None}


def _checked_device(device):
    """None, or a cpu/cuda torch.device for ``device`` (a ValueError for anything else)."""
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return parsed


# ---------------------------------------------------------------------------------- messages
_FIGURE_OF = {"max_params": "params", "max_macs": "macs", "max_flops": "flops", "max_peak_memory": "peak_memory",
              "max_latency_ms": "latency_ms"}


def exceeded(figures: ModelFigures, limits: dict) -> list[str]:
    """One clause per budget ``figures`` exceeds: 'max_macs exceeded by M: 1.82 GMACs > 1.5 GMACs (+21.2%)'."""
    over = [(budget, getattr(figures, _FIGURE_OF[budget]), limit) for budget, limit in limits.items()
            if getattr(figures, _FIGURE_OF[budget]) > limit]
    if len(over) == 1:
        budget, value, limit = over[0]
        return [f"{budget} exceeded by {figures.name}: {' > '.join(_pair(_FIGURE_OF[budget], value, limit))} "
                f"({_growth(value, limit)})"]
    if not over:
        return []
    return [f"{len(over)} budgets exceeded by {figures.name}: "
            + "; ".join(f"{budget} {' > '.join(_pair(_FIGURE_OF[budget], value, limit))} ({_growth(value, limit)})"
                        for budget, value, limit in over)]


def _pair(figure: str, first, second) -> tuple[str, str]:
    """Two values of a figure in its unit, exact where rounding would make them look equal."""
    shown = (_shown(figure, first), _shown(figure, second))
    if shown[0] == shown[1]:
        shown = (_shown(figure, first, exact=True), _shown(figure, second, exact=True))
    return shown


def _shown(figure: str, value, exact: bool = False) -> str:
    from torchprof_lab.report.render import binary, si

    if figure == "latency_ms":
        return f"{value:.6g} ms" if exact else f"{value:.3g} ms"
    if figure == "peak_memory":
        return f"{value:,} B" if exact else binary(value)
    unit = {"params": " params", "macs": "MACs", "flops": "FLOPs"}[figure]
    if exact:
        return f"{value:,}{' ' if unit[0] != ' ' else ''}{unit}"
    return f"{si(value)}{unit}" if figure == "params" else si(value, unit)


def _growth(value, reference) -> str:
    """'+21.2%': how far ``value`` is over ``reference``."""
    if reference == 0:
        return "over 0" if value else "+0%"
    pct = (value - reference) / reference * 100
    return f"+{pct:.0f}%" if pct >= 100 else f"+{pct:.1f}%" if pct >= 0.1 else f"+{pct:.2g}%"


# ---------------------------------------------------------------------------------- the baseline
class Baseline:
    """The baseline file of one session: read once when pytest starts, compared with and added to
    by each check, written once (atomically) when the session ends if anything changed.

    File: {"format": BASELINE_FORMAT, "models": {nodeid: {name: {params, macs, flops, peak_memory,
    batch_size, input_shape}}}}. An absent file is a first run; an unreadable or malformed one is a
    ValueError with one line.
    """

    def __init__(self, path: str, tolerance: float, update: bool):
        self.path, self.tolerance, self.update = path, tolerance, update
        self.models = read_baseline(path)
        self.changed = False
        self.recorded = self.updated = 0

    def compare(self, nodeid: str, figures: ModelFigures, input_shape: tuple) -> str | None:
        """Record ``figures`` if new (or if updating); otherwise a clause naming each guarded figure that
        grew by more than the tolerance, or a setup that differs from the recorded one; None if fine."""
        entry = {"params": figures.params, "macs": figures.macs, "flops": figures.flops,
                 "peak_memory": figures.peak_memory, "batch_size": figures.batch_size,
                 "input_shape": [int(d) for d in input_shape]}
        entry = {k: v for k, v in entry.items() if v is not None}
        held = self.models.setdefault(nodeid, {})
        old = held.get(figures.name)
        if old is None or (self.update and old != entry):
            held[figures.name] = entry
            self.changed = True
            if old is None:
                self.recorded += 1
            else:
                self.updated += 1
            return None
        if self.update:
            return None
        setup = (old.get("batch_size"), old.get("input_shape"))
        if setup != (entry["batch_size"], entry["input_shape"]):
            return (f"{figures.name} is checked with batch {entry['batch_size']} and input {tuple(entry['input_shape'])}"
                    f" but its baseline in {self.path} was recorded with batch {setup[0]} and input "
                    f"{tuple(setup[1] or ())}: pass --torchprof-update-baseline to record it again")
        grown = []
        for figure in BASELINE_FIGURES:
            if figure not in entry:
                continue
            if figure not in old:  # a figure measured for the first time: added to the record
                old[figure] = entry[figure]
                self.changed = True
                continue
            before, now = old[figure], entry[figure]
            if now > before * (1 + self.tolerance):
                grown.append(f"{figure} {' -> '.join(_pair(figure, before, now))} ({_growth(now, before)})")
        if not grown:
            return None
        return (f"{figures.name} grew beyond its baseline (tolerance {self.tolerance * 100:g}%): " + "; ".join(grown))

    def write(self) -> None:
        from torchprof_lab.report.write import write_atomically

        data = {"format": BASELINE_FORMAT, "models": self.models}
        write_atomically(self.path, json.dumps(data, indent=2, sort_keys=True))


def read_baseline(path: str) -> dict:
    """{nodeid: {name: figures}} from a baseline file; {} if the file does not exist yet (its folder must)."""
    where = f"torchprof baseline {path}"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{where}: folder {folder} does not exist")
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON (line {exc.lineno}: {exc.msg}): fix or delete it") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT or not isinstance(data.get("models"), dict):
        raise ValueError(f"{where} is not a torchprof_lab baseline (expected {{\"format\": \"{BASELINE_FORMAT}\", "
                         f"\"models\": {{...}}}}): fix or delete it")
    for nodeid, named in data["models"].items():
        if not isinstance(named, dict):
            raise ValueError(f"{where} is corrupt: the entry of {nodeid} is not an object of models: fix or delete it")
        for name, entry in named.items():
            bad = _bad_entry(entry)
            if bad:
                raise ValueError(f"{where} is corrupt: {nodeid} model {name}: {bad}: fix or delete it")
    return data["models"]


def _bad_entry(entry) -> str | None:
    """Why a recorded entry cannot be compared with, or None."""
    if not isinstance(entry, dict):
        return "not an object of figures"
    for key in ("params", "macs", "batch_size"):
        if key not in entry:
            return f"{key} missing"
    for key in ("params", "macs", "flops", "peak_memory", "batch_size"):
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} is {value!r}, not a count"
    shape = entry.get("input_shape", [])
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return f"input_shape is {shape!r}, not a list of sizes"
    return None
