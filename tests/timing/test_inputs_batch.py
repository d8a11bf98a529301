"""inputs= carries its batch: samples/s follow the real batch, a list of images is a batch, and
a callable of the batch size makes inputs for a sweep."""

import pytest
import torch
from torch import nn

import torchprof_lab

FAST = dict(min_time=0.02, min_runs=3, warmup=1, warmup_time=0.0)


def test_the_inputs_batch_is_the_rows_batch():
    b = torchprof_lab.benchmark(nn.Linear(256, 256), inputs=torch.randn(64, 256), **FAST)
    row = b.rows[0]
    assert row.batch_size == 64 and row.samples_per_s == pytest.approx(64 / row.latency.p50)
    r = torchprof_lab.count(nn.Linear(256, 256), inputs=torch.randn(64, 256))
    assert r.batch_size == 64 and r.macs == 64 * 256 * 256
    kwargs = {"input": torch.randn(5, 8)}
    assert torchprof_lab.count(nn.Linear(8, 8), inputs=kwargs).batch_size == 5


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, a, b):
        return self.fc(a).sum() + b.sum()


def test_ambiguous_inputs_need_batch_size():
    model = TwoInputs()
    pair = (torch.randn(2, 4), torch.randn(3, 6))
    with pytest.raises(ValueError, match="pass batch_size= beside inputs="):
        torchprof_lab.benchmark(model, inputs=pair, **FAST)  # samples/s need the batch
    unknown = torchprof_lab.count(model, inputs=pair)  # counts need no batch: a note says it is unknown
    assert unknown.batch_size == 1 and any("batch size unknown" in n for n in unknown.notes)
    assert torchprof_lab.count(model, inputs=pair, batch_size=2).notes == ()
    same = (torch.randn(3, 4), torch.randn(3, 6))
    assert torchprof_lab.count(nn.Bilinear(4, 6, 3), inputs=same).batch_size == 3
    assert torchprof_lab.count(nn.Bilinear(4, 6, 3), inputs=same, batch_size=3).batch_size == 3
    b = torchprof_lab.benchmark(nn.Linear(4, 4), inputs=(torch.randn(7, 4),), batch_size=7, **FAST)
    assert b.rows[0].batch_size == 7


class Detector(nn.Module):
    """Takes a list of images of different sizes, as torchvision's detection models do."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, images):
        return [self.conv(img.unsqueeze(0)).mean() for img in images]


def test_a_list_of_images_is_a_batch_of_its_length():
    images = [torch.randn(3, 16, 16), torch.randn(3, 20, 12), torch.randn(3, 8, 8)]
    r = torchprof_lab.count(Detector(), inputs=images)
    expected = sum(4 * 3 * 9 * (h - 2) * (w - 2) for _, h, w in (i.shape for i in images))
    assert r.batch_size == 3 and r.macs == expected
    b = torchprof_lab.benchmark(Detector(), inputs=images, **FAST)
    assert b.rows[0].batch_size == 3


def test_a_callable_makes_inputs_for_every_batch_size():
    model = nn.Linear(16, 16)
    r = torchprof_lab.profile(model, inputs=lambda n: torch.randn(n, 16), batch_sizes=[2, 8], hardware=False, **FAST)
    assert [(row.batch_size, row.flops_per_batch) for row in r.timing.rows] == [
        (2, torchprof_lab.count(model, (16,), 2).flops), (8, torchprof_lab.count(model, (16,), 8).flops)]
    assert r.batch_size == 2
    swept = torchprof_lab.benchmark(model, inputs=lambda n: {"input": torch.randn(n, 16)}, sweep=True,
                                    sweep_budget=0.0, **FAST)
    assert swept.rows[0].batch_size == 1


def test_inputs_and_batch_sizes_that_disagree_are_refused():
    with pytest.raises(ValueError, match="callable of the batch size"):
        torchprof_lab.benchmark(nn.Linear(4, 4), inputs=torch.randn(4, 4), batch_sizes=[1, 8], **FAST)
    with pytest.raises(ValueError, match=r"inputs\(8\) made a batch of 4"):
        torchprof_lab.benchmark(nn.Linear(4, 4), inputs=lambda n: torch.randn(4, 4), batch_sizes=[8], **FAST)
    for bad in (4, "8", [0], [2, -1], [True]):
        with pytest.raises(ValueError, match="batch"):
            torchprof_lab.benchmark(nn.Linear(4, 4), (4,), bad, **FAST)
    with pytest.raises(ValueError, match="input_shape or inputs"):
        torchprof_lab.benchmark(nn.Linear(4, 4), (4,), inputs=torch.randn(2, 4), **FAST)
    # profile passes them on as benchmark does: batch_sizes beside one fixed batch are not dropped unseen
    with pytest.raises(ValueError, match="one batch of 2: for batch_sizes"):
        torchprof_lab.profile(nn.Linear(4, 4), inputs=torch.randn(2, 4), batch_sizes=[5], **FAST)
    assert [r.batch_size for r in torchprof_lab.profile(nn.Linear(4, 4), inputs=torch.randn(2, 4), batch_sizes=[2],
                                                        hardware=False, **FAST).timing.rows] == [2]


def test_a_batch_size_that_labels_another_first_dimension_is_said():
    """batch_size= labels sequence-first inputs (T, B, D) on purpose; a batch_size that contradicts
    the inputs' common first dimension is kept as the label, and the report says so."""
    rnn = nn.GRU(8, 8)  # sequence-first: (T=6, B=3, 8)
    x = torch.randn(6, 3, 8)
    said = "batch_size=3 labels inputs whose tensors' first dimension is 6: per-sample figures divide by 3"
    r = torchprof_lab.count(rnn, inputs=x, batch_size=3)
    assert r.batch_size == 3 and any(n.startswith(said) for n in r.notes)
    m = torchprof_lab.memory(rnn, inputs=x, batch_size=3)
    assert m.batch_size == 3 and any(n.startswith(said) for n in m.notes)
    p = torchprof_lab.profile(rnn, inputs=x, batch_size=3, hardware=False, **FAST)
    assert p.timing.rows[0].batch_size == 3 and [n for n in p.notes if n.startswith(said)] != []
    for agreeing in (torchprof_lab.count(rnn, inputs=x), torchprof_lab.count(rnn, inputs=x, batch_size=6),
                     torchprof_lab.count(rnn, inputs=lambda b: torch.randn(6, b, 8), batch_size=3)):
        assert not any("labels inputs" in n for n in agreeing.notes)


def test_a_nested_input_on_meta_is_refused_in_one_line():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's prototype warning for nested tensors
        x = torch.nested.nested_tensor([torch.randn(2, 8), torch.randn(3, 8)])
    with pytest.raises(ValueError, match="a nested tensor input cannot go to the meta device"):
        torchprof_lab.count(nn.Linear(8, 8), inputs=x, device="meta")
