"""Per-token figures without transformers: parameters without embeddings, tokens/s in the
timing table, plain token ids, and the one-line message of a data-dependent check on meta."""

import json

import pytest
import torch
from torch import nn

import torchprof_lab
from torchprof_lab.cli import main
from torchprof_lab.errors import DataDependentError


def test_embedding_params_of_any_model():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    r = torchprof_lab.count(model, inputs=torch.randint(10, (2, 5)))
    assert (r.embedding_params, r.params_without_embeddings) == (40, 15)
    assert "Params without embeddings: 15 (embeddings 40)" in str(r)


def test_the_timing_table_shows_sequence_length_and_tokens_per_second():
    from torchprof_lab.report.render import render
    from torchprof_lab.timing.result import BenchmarkReport, BenchmarkRow
    from torchprof_lab.timing.stats import LatencyStats

    rows = tuple(BenchmarkRow(b, latency=LatencyStats.of([0.01] * 20), tokens_per_sample=s)
                 for b, s in ((1, 8), (2, 16)))
    bench = BenchmarkReport("m", "given inputs", "cpu", "fp32", "inference", "perf_counter", {},
                            {"cpu": "x", "intra_op_threads": 1}, rows)
    assert rows[1].tokens_per_s == pytest.approx(2 / 0.01 * 16)
    table = render(bench)
    assert "Seq" in table and "Tokens/s" in table and "batch 2, seq 16" in table
    header, _, second = render(bench, "csv").splitlines()  # raw numbers, as in a profile's CSV
    row = dict(zip(header.split(","), second.split(",")))
    assert (row["batch_size"], row["status"], row["tokens_per_sample"]) == ("2", "ok", "16")
    assert float(row["samples_per_s"]) == pytest.approx(200) and float(row["tokens_per_s"]) == pytest.approx(3200)



def test_a_data_dependent_check_on_meta_is_named_in_one_line():
    class Checks(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            if (x > 0).all():  # reads values: meta has none
                x = x * 2
            return self.fc(x)

    model = Checks()
    assert torchprof_lab.count(model, (4,)).macs == 16
    with pytest.raises(DataDependentError) as caught:
        torchprof_lab.count(model, (4,), device="meta")
    text = str(caught.value)
    assert "\n" not in text and "the model forward (Checks)" in text and "test_per_token.py" in text
    assert "`if (x > 0).all():" in text and text.endswith("meta tensors have no values; count on the CPU")


def test_cli_plain_token_ids_for_a_factory_model(capsys):
    assert main(["llm_models:tiny_lm", "--input-dtype", "long", "--vocab", "50", "--seq-len", "12",
                 "--batch", "3", "--no-timing", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"] == "(3, 12) int64" and data["params_without_embeddings"] == data["params"] - 50 * 16
    assert data["flops_per_token"] == data["flops"] / 36
