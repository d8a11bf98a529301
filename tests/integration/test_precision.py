"""Precision comparison on the CPU: bf16 and int8 against fp32, on random, given and loaded inputs."""

import copy
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import torchprof_lab
import torchprof_lab.report.render
from torchprof_lab.cli import main
from torchprof_lab.precision_compare import compare_precision

FAST = dict(min_time=0.05, warmup=1)


def trained_classifier():
    """An MLP trained for a few hundred steps on separable blobs: confident, trained-like logits."""
    torch.manual_seed(0)
    centres = torch.randn(10, 64) * 3
    labels = torch.randint(0, 10, (2048,))
    data = centres[labels] + torch.randn(2048, 64)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(200):
        idx = torch.randint(0, 2048, (128,))
        loss = nn.functional.cross_entropy(model(data[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), data


def test_bf16_and_int8_errors_are_nonzero_bounded_and_agreement_high():
    model, data = trained_classifier()
    before = copy.deepcopy(model.state_dict())
    r = compare_precision(model, inputs=data[:256], dtypes=["bf16", "int8"], **FAST)
    assert [row.dtype for row in r.rows] == ["fp32", "bf16", "int8"]
    fp32 = r.row("fp32")
    assert fp32.max_abs_error == 0 and fp32.top1_agreement == 1.0 and fp32.speedup == 1.0
    for dtype in ("bf16", "int8"):
        row = r.row(dtype)
        assert 0 < row.mean_abs_error <= row.max_abs_error
        assert 0 < row.mean_rel_error < 0.05 and 0 < row.max_rel_error < 0.1
        assert 0.95 <= row.top1_agreement <= 1.0
        assert row.p50_s > 0 and row.speedup == pytest.approx(fp32.p50_s / row.p50_s)
    assert r.row("bf16").model_bytes < 0.6 * fp32.model_bytes
    assert r.row("int8").model_bytes < 0.4 * fp32.model_bytes
    assert "given batch (256, 64)" in r.inputs and "Top-1 agree" in str(r)
    assert r.notes == () and "Note:" not in str(r)  # trained outputs: nothing to warn about
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_tiny_outputs_of_an_untrained_model_are_flagged():
    """Near-zero fp32 outputs (as from untrained weights) are lost by int8's floored scale: the
    table alone would read 0% agreement as a verdict on int8, so the report says why."""
    model, data = trained_classifier()
    with torch.no_grad():
        model[2].weight.mul_(1e-9)
        model[2].bias.zero_()
    r = compare_precision(model, inputs=data[:64], dtypes=["int8"], **FAST)
    assert len(r.notes) == 1 and r.notes[0].startswith("the fp32 outputs are tiny (max |y| = ")
    assert "Note: the fp32 outputs are tiny" in str(r) and r.to_dict()["notes"] == list(r.notes)


def test_random_inputs_and_dataloader_are_named():
    model, data = trained_classifier()
    random = compare_precision(model, (64,), 16, dtypes=["bf16"], max_batches=2, **FAST)
    assert random.samples == 32 and random.inputs.startswith("random")
    loader = DataLoader(TensorDataset(data[:96], torch.zeros(96)), batch_size=32)
    loaded = compare_precision(model, loader=loader, dtypes=["int8"], **FAST)
    assert loaded.samples == 96 and loaded.inputs == "DataLoader (3 batches)"


def test_non_classifier_output_has_no_top1():
    r = compare_precision(nn.Conv2d(3, 4, 3), (3, 8, 8), 2, dtypes=["bf16"], **FAST)
    assert r.row("bf16").top1_agreement is None and r.row("bf16").max_abs_error > 0


def test_bad_requests_are_clear():
    with pytest.raises(ValueError, match="unknown precision"):
        compare_precision(nn.Linear(2, 2), (2,), dtypes=["fp8"])
    with pytest.raises(ValueError, match="tf32"):
        compare_precision(nn.Linear(2, 2), (2,), dtypes=["tf32"])
    with pytest.raises(TypeError):
        compare_precision("model", (2,))


def test_cli_compare_dtypes_with_a_sample_batch(tmp_path, capsys):
    sample = tmp_path / "batch.pt"
    torch.save(torch.randn(4, 3, 32, 32), sample)
    assert main(["resnet18", "--compare-dtypes", "fp32,bf16", "--sample-batch", str(sample), "--min-time", "0.05",
                 "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "bf16" in out and "given batch (4, 3, 32, 32)" in out
    assert "Note: weights: random initialisation (no --weights)" in out
    assert main(["resnet18", "--compare-dtypes", "fp32,nope"]) == 2


def test_int8_with_nothing_to_quantize_is_said_not_shown():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    r = torchprof_lab.compare_precision(conv, (3, 8, 8), 2, dtypes=["int8"], max_batches=1, min_time=0.02, warmup=1)
    assert [row.dtype for row in r.rows] == ["fp32"]
    assert any("no nn.Linear layer" in n for n in r.notes) and "no nn.Linear layer" in str(r)
    root = torchprof_lab.compare_precision(nn.Linear(256, 256), (256,), 4, dtypes=["int8"], max_batches=1,
                                           min_time=0.02, warmup=1)
    assert [row.dtype for row in root.rows] == ["fp32", "int8"]  # a Linear root is quantized too
    assert root.row("int8").max_abs_error > 0 and root.row("int8").model_bytes < root.row("fp32").model_bytes


def test_nan_outputs_are_a_note_and_strict_json_null():
    class Nan(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x) * float("nan")

    r = torchprof_lab.compare_precision(Nan(), (4,), 4, dtypes=["bf16"], max_batches=1, min_time=0.02, warmup=1)
    bf16 = r.row("bf16")
    assert bf16.top1_agreement is None and math.isnan(bf16.max_abs_error)
    assert any("NaN or infinity" in n for n in r.notes)
    text = torchprof_lab.report.render.render(r, "json")
    data = json.loads(text)  # strict: no bare NaN
    assert ": NaN" not in text and data["rows"][1]["max_abs_error"] is None
