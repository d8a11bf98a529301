"""register_formula: a cost for a custom op, charged to the layer that calls it, on CPU and meta."""

import inspect

import pytest
import torch
from torch import nn

import torchprof_lab
from torchprof_lab.counting import registry
from torchprof_lab.counting.attribution import Accumulator, LayerTracker
from torchprof_lab.counting.dispatch import CountingMode
from torchprof_lab.counting.engine import run_pass
from torchprof_lab.counting.registry import formula_table, register, register_formula, unregister_formula


@torch.library.custom_op("tplab_test::scaled_mm", mutates_args=())
def scaled_mm(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    return (a @ b) * scale


@scaled_mm.register_fake
def _(a, b, scale):
    return a.new_empty(a.shape[0], b.shape[1])


@torch.library.custom_op("tplab_test::two_overloads", mutates_args=())
def _two_overloads(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


OP = torch.ops.tplab_test.scaled_mm.default
PACKET = torch.ops.tplab_test.scaled_mm
NAME = "tplab_test.scaled_mm.default"  # as uncounted_ops prints it


def scaled_mm_cost(args, kwargs, out):
    a, b = args[0], args[1]
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return macs, 2 * macs + out.numel()  # the matmul, then one multiply per output element


@pytest.fixture(autouse=True)
def clean_registry():
    """Whatever a test registers is removed after it, so tests run in any order."""
    before = dict(registry.registry())
    yield
    for op in list(registry._USER_REGISTERED):
        unregister_formula(op)
    assert registry.registry() == before


class Mixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 16))

    def forward(self, x):
        return scaled_mm(x, self.weight, 0.5)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Linear(8, 8)
        self.mix = Mixer()
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.mix(self.pre(x)))


BATCH = 4
MIX_MACS = BATCH * 8 * 16
MIX_FLOPS = 2 * MIX_MACS + BATCH * 16


def layer(report, name):
    return next(r for r in report.layers if r.name == name)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_unregistered_custom_op_is_listed_as_uncounted(device):
    report = torchprof_lab.count(Net(), (8,), BATCH, device=device)
    assert report.uncounted_ops == {NAME: 1}
    assert layer(report, "mix").macs == 0 and layer(report, "mix").flops == 0


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_registered_formula_is_charged_to_the_calling_layer(device):
    reference = torchprof_lab.count(Net(), (8,), BATCH, device=device)
    register_formula(OP, scaled_mm_cost)
    report = torchprof_lab.count(Net(), (8,), BATCH, device=device)
    assert report.uncounted_ops == {}
    mix = layer(report, "mix")
    assert (mix.macs, mix.flops) == (MIX_MACS, MIX_FLOPS)
    assert mix.bytes == 4 * (BATCH * 8 + 8 * 16 + BATCH * 16)  # inputs and output, fp32
    for name in ("pre", "act"):
        assert (layer(report, name).macs, layer(report, name).flops) == \
            (layer(reference, name).macs, layer(reference, name).flops)
    assert report.macs == reference.macs + MIX_MACS
    assert report.flops == reference.flops + MIX_FLOPS


def test_moves_bytes_false_and_callable():
    register_formula(OP, scaled_mm_cost, moves_bytes=False)
    assert layer(torchprof_lab.count(Net(), (8,), BATCH, device="meta"), "mix").bytes == 0
    unregister_formula(OP)
    register_formula(OP, scaled_mm_cost, moves_bytes=lambda args, kwargs, out: 123)
    assert layer(torchprof_lab.count(Net(), (8,), BATCH, device="meta"), "mix").bytes == 123


def test_decorator_form_and_packet_registration():
    @register_formula(PACKET)
    def cost(args, kwargs, out):
        return 1, 2

    assert cost is not None and registry.lookup(OP).formula is cost
    report = torchprof_lab.count(Net(), (8,), BATCH, device="meta")
    assert (layer(report, "mix").macs, layer(report, "mix").flops) == (1, 2)


@pytest.mark.parametrize("name", ["tplab_test::scaled_mm", "tplab_test::scaled_mm.default",
                                  "tplab_test.scaled_mm.default", "tplab_test.scaled_mm"])
def test_string_names_resolve(name):
    register_formula(name, scaled_mm_cost)
    assert registry.lookup(OP).formula is scaled_mm_cost
    unregister_formula(name)
    assert registry.lookup(OP) is None


@pytest.mark.parametrize("name", ["tplab_test::no_such_op", "tplab_test::scaled_mm.no_such_overload",
                                  "no_namespace_given", "::scaled_mm"])
def test_unknown_names_raise(name):
    with pytest.raises(ValueError):
        register_formula(name, scaled_mm_cost)


def test_not_an_op_raises():
    with pytest.raises(TypeError, match="OpOverload"):
        register_formula(scaled_mm, scaled_mm_cost)  # the CustomOpDef, not torch.ops.<ns>.<name>
    with pytest.raises(TypeError, match="callable"):
        register_formula(OP, 42)


def test_registering_twice_raises():
    register_formula(OP, scaled_mm_cost)
    with pytest.raises(ValueError, match=r"tplab_test\.scaled_mm\.default already has a cost formula.*formulas="):
        register_formula(OP, scaled_mm_cost)
    with pytest.raises(ValueError, match="already has a cost formula"):
        register_formula("tplab_test::scaled_mm", lambda args, kwargs, out: (0, 0))
    assert registry.lookup(OP).formula is scaled_mm_cost


@pytest.mark.parametrize("op", [torch.ops.aten.mm.default, torch.ops.aten.mm, "aten::mm", "aten.mm.default"])
def test_builtin_op_registration_raises(op):
    before = registry.lookup(torch.ops.aten.mm.default)
    with pytest.raises(ValueError, match=r"aten\.mm\.default already has a cost formula.*count\(\.\.\., formulas="):
        register_formula(op, scaled_mm_cost)
    assert registry.lookup(torch.ops.aten.mm.default) is before


def test_error_is_one_line():
    with pytest.raises(ValueError) as info:
        register_formula(torch.ops.aten.mm.default, scaled_mm_cost)
    assert "\n" not in str(info.value)


def test_internal_register_raises_on_duplicates_too():
    with pytest.raises(ValueError, match="already has a cost formula"):
        register(torch.ops.aten.addmm)(scaled_mm_cost)
    with pytest.raises(ValueError, match="listed twice"):
        register(OP, PACKET)(scaled_mm_cost)
    assert registry.lookup(OP) is None  # a failed registration enters nothing


def test_builtin_table_has_no_in_place_twin_listed_twice():
    """formulas.py imported without raising, so no op was registered twice; copy_ is covered once."""
    assert registry.lookup(torch.ops.aten.copy_.default) is not None
    assert registry.lookup(torch.ops.aten.copy.default) is not None


def test_unregister():
    register_formula(OP, scaled_mm_cost)
    unregister_formula(OP)
    assert registry.lookup(OP) is None
    assert torchprof_lab.count(Net(), (8,), BATCH, device="meta").uncounted_ops == {NAME: 1}
    with pytest.raises(KeyError):
        unregister_formula(OP)
    with pytest.raises(KeyError):
        unregister_formula(torch.ops.aten.mm.default)  # built-ins cannot be removed
    assert registry.lookup(torch.ops.aten.mm.default) is not None


def test_unregister_packet_removes_every_registered_overload():
    register_formula(torch.ops.tplab_test.two_overloads, scaled_mm_cost)
    assert registry.lookup(torch.ops.tplab_test.two_overloads.default) is not None
    unregister_formula("tplab_test::two_overloads")
    assert registry.lookup(torch.ops.tplab_test.two_overloads.default) is None


# ---------------------------------------------------------------------- per-call overrides
def _count_with(model, x, table):
    """One forward under a CountingMode built on ``table`` (what run_pass does with formulas=)."""
    accumulators = {m: Accumulator(n, type(m).__name__) for n, m in model.named_modules()}
    tracker = LayerTracker(accumulators, accumulators[model], track_backward=False)
    counter = CountingMode(tracker, table=table)
    tracker.attach()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        tracker.detach()
    return {acc.name: (acc.macs, acc.flops) for acc in accumulators.values()}, counter.uncounted


def test_formula_table_without_overrides_is_the_live_registry():
    assert formula_table() is registry.registry()
    assert formula_table({}) is registry.registry()


def test_per_call_override_of_a_custom_and_a_builtin_op():
    model, x = Net(), torch.randn(BATCH, 8)
    table = formula_table({"tplab_test::scaled_mm": scaled_mm_cost,
                           torch.ops.aten.addmm: lambda args, kwargs, out: (7, 11)})
    assert OP not in registry.registry()  # the live table is untouched
    assert table[torch.ops.aten.addmm.default].moves_bytes is registry.lookup(torch.ops.aten.addmm.default).moves_bytes
    costs, uncounted = _count_with(model, x, table)
    assert uncounted == {}
    assert costs["mix"] == (MIX_MACS, MIX_FLOPS)
    assert costs["pre"] == (7, 11)
    costs, uncounted = _count_with(model, x, None)  # default: the registry
    assert uncounted == {OP: 1} and costs["mix"] == (0, 0) and costs["pre"][0] == BATCH * 8 * 8


def test_per_call_override_wins_over_a_registration():
    register_formula(OP, scaled_mm_cost)
    costs, _ = _count_with(Net(), torch.randn(BATCH, 8), formula_table({OP: lambda args, kwargs, out: (1, 3)}))
    assert costs["mix"] == (1, 3)


@pytest.mark.skipif("formulas" not in inspect.signature(run_pass).parameters,
                    reason="run_pass(formulas=) not wired in counting/engine.py yet")
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_count_formulas_argument(device):
    report = torchprof_lab.count(Net(), (8,), BATCH, device=device, formulas={"tplab_test::scaled_mm": scaled_mm_cost})
    assert report.uncounted_ops == {}
    assert (layer(report, "mix").macs, layer(report, "mix").flops) == (MIX_MACS, MIX_FLOPS)
    assert OP not in registry.registry()
