"""Bad input fails with one actionable line."""

import pytest
import torch
import torchvision
from torch import nn

import torchprof_lab
from torchprof_lab import ForwardError, UncountedOpsError, UnknownModelError
from torchprof_lab.models import build_model


def test_wrong_channels_names_the_layer_and_shape():
    with pytest.raises(ForwardError) as info:
        torchprof_lab.count(torchvision.models.resnet18(), (4, 64, 64))
    message = str(info.value)
    assert "'conv1' (Conv2d)" in message and "(1, 4, 64, 64)" in message
    assert "\n" not in message


def test_inner_layer_is_named():
    model = nn.Sequential(nn.Linear(4, 6), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(ForwardError) as info:
        torchprof_lab.count(model, (4,))
    assert info.value.layer == "1.1" and info.value.layer_type == "Linear"
    assert "(1, 6)" in str(info.value)


@pytest.mark.parametrize("not_a_model", [None, "resnet50", lambda x: x, torch.randn(2)])
def test_non_module_is_type_error(not_a_model):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        torchprof_lab.count(not_a_model, (3,))


@pytest.mark.parametrize("shape", [None, (), (3, 0), (3, -1), "3,224", 5, (3.0, 2), (True, 2)])
def test_bad_input_shape(shape):
    with pytest.raises(ValueError):
        torchprof_lab.count(nn.Linear(3, 3), shape)


@pytest.mark.parametrize("batch", [0, -1, 1.5, True])
def test_bad_batch(batch):
    with pytest.raises(ValueError, match="batch_size"):
        torchprof_lab.count(nn.Linear(3, 3), (3,), batch_size=batch)


def test_both_shape_and_inputs():
    with pytest.raises(ValueError, match="not both"):
        torchprof_lab.count(nn.Linear(3, 3), (3,), inputs=torch.randn(1, 3))


def test_device_mismatch_is_clear():
    with pytest.raises(ValueError, match="CUDA is not available" if not torch.cuda.is_available() else "device='meta'"):
        torchprof_lab.count(nn.Linear(3, 3), (3,), device="cuda")


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError) as info:
        build_model("resnet5")
    assert "resnet50" in info.value.suggestions
    with pytest.raises(UnknownModelError):
        build_model("no_such_package_xyz:make")
    with pytest.raises(UnknownModelError) as info:
        build_model("torchvision.models:resnet5")
    assert "torchvision.models:resnet50" in info.value.suggestions


class Unusual(nn.Module):
    def forward(self, x):
        return torch.special.bessel_j0(x)


def test_uncounted_ops_are_listed_and_strict_raises():
    r = torchprof_lab.count(Unusual(), (4,))
    assert r.uncounted_ops == {"aten.special_bessel_j0.default": 1}
    assert "special_bessel_j0" in str(r)
    with pytest.raises(UncountedOpsError, match="special_bessel_j0"):
        torchprof_lab.count(Unusual(), (4,), strict=True)


def test_a_formula_that_cannot_read_its_arguments_lists_the_op(monkeypatch):
    from torchprof_lab.counting import registry

    table = registry.registry()
    op = torch.ops.aten.mm.default
    broken = registry.OpCost(lambda args, kwargs, out: 1 / 0, True)
    monkeypatch.setitem(table, op, broken)
    r = torchprof_lab.count(MatMul(), inputs=(torch.randn(2, 3), torch.randn(3, 4)))
    assert r.uncounted_ops == {"aten.mm.default": 1} and r.macs == 0


class MatMul(nn.Module):
    def forward(self, a, b):
        return a @ b


def test_a_usual_cause_is_named_beside_torchs_words():
    """Batch norm at batch 1 in training, float ids into an embedding, a position past its rows: the
    error keeps torch's words and adds what to do. The profile names the batch norm as the timed
    training step met it (its naming pass runs in training mode too)."""
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(ForwardError, match=r"'1' \(BatchNorm1d\) .*Expected more than 1 value per channel when "
                                           r"training.*\(a batch norm in training mode needs .* a batch of 2 or more"):
        torchprof_lab.profile(net, (4,), batch_sizes=[1], train=True, min_time=0.01, warmup=0, hardware=False)
    table = nn.Sequential(nn.Embedding(10, 4))
    with pytest.raises(ForwardError, match=r"scalar types: Long, Int.*\(an embedding takes integer ids"):
        torchprof_lab.count(table, inputs=torch.zeros(1, 3))
    with pytest.raises(ForwardError, match=r"index out of range in self \(an id or a position past the embedding"):
        torchprof_lab.count(table, inputs=torch.tensor([[3, 12]]))
    class Picks(nn.Module):  # index_select's words outside an embedding: no embedding hint
        def forward(self, x):
            return x.index_select(0, torch.tensor([7]))

    with pytest.raises(ForwardError) as picked:
        torchprof_lab.count(Picks(), (4,))
    assert str(picked.value).endswith("index out of range in self")
    with pytest.raises(ForwardError) as plain:  # no usual cause: torch's words alone
        torchprof_lab.count(nn.Linear(5, 2), (4,))
    assert str(plain.value).endswith(f": {plain.value.reason}")
