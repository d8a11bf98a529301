"""Every rendering reads the same records, and the records add up."""

import csv
import io
import json

import torch
import torchvision
from torch import nn

import torchprof_lab


def report():
    return torchprof_lab.count(torchvision.models.resnet18(), (3, 64, 64), batch_size=2)


def test_layers_are_preorder_with_depth_and_shapes():
    r = report()
    names = [layer.name for layer in r.layers]
    model = torchvision.models.resnet18()
    assert names == [n for n, _ in model.named_modules()][1:]
    assert r.layer("layer1.0.conv1").depth == 3
    assert r.layer("conv1").output_shape == (2, 64, 32, 32)
    assert r.layer("fc").params == 512 * 1000 + 1000


def test_parents_roll_up_children():
    r = report()
    children = [layer for layer in r.layers if layer.name.startswith("layer1.") and layer.depth == 2]
    assert r.layer("layer1").macs == sum(c.macs for c in children)
    top = [layer for layer in r.layers if layer.depth == 1]
    assert r.macs == sum(layer.macs for layer in top)  # ResNet.forward itself does no matrix op


def test_shared_module_counted_once():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    r = torchprof_lab.count(model, (4,))
    assert r.macs == 2 * 16 and r.layer("0").calls == 2
    assert r.params == 20 and r.params_used == 20


def test_storage_and_state_dict_sizes():
    r = torchprof_lab.count(nn.Linear(10, 10), (10,))
    assert r.storage_bytes == {"fp32": 440, "fp16": 220, "bf16": 220, "int8": 110}
    assert r.state_dict_bytes == 440
    half = torchprof_lab.count(nn.Linear(10, 10).half(), inputs=torch.randn(1, 10).half(), device="meta")
    assert half.state_dict_bytes == 220 and half.param_dtype == "fp16"


def test_json_csv_markdown_table_agree():
    r = report()
    data = json.loads(r.to_json())
    assert data["macs"] == r.macs and data["flops"] == r.flops and data["params"] == r.params
    assert [layer["name"] for layer in data["layers"]] == [layer.name for layer in r.layers]
    assert "FLOPs = 2 x MACs" in data["conventions"]
    rows = list(csv.DictReader(io.StringIO(r.to_csv())))
    assert rows[-1]["name"] == "(total)" and int(rows[-1]["macs"]) == r.macs
    assert int(rows[1]["flops"]) == r.layers[1].flops
    table, markdown = str(r), r.to_markdown()
    for text in (table, markdown):
        assert "MACs" in text and "FLOPs" in text and "1 MAC = 2 FLOPs" in text
    assert markdown.count("|") > 10
    assert table.splitlines()[0].startswith("ResNet")


def test_depth_limits_table_rows():
    r = report()
    shallow = r.to_table(depth=1)
    assert "layer1.0.conv1" not in shallow and "layer1" in shallow and "Total" in shallow


def test_inputs_dict_for_token_models():
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(100, 16)
            self.head = nn.Linear(16, 2)

        def forward(self, input_ids, attention_mask):
            return self.head(self.embed(input_ids) * attention_mask[..., None])

    ids = torch.randint(0, 100, (3, 7))
    r = torchprof_lab.count(Tokens(), inputs={"input_ids": ids, "attention_mask": torch.ones(3, 7)})
    assert r.batch_size == 3 and r.macs == 3 * 7 * 16 * 2
    assert r.layer("embed").bytes == ids.nbytes + 2 * 3 * 7 * 16 * 4  # rows gathered, not the table


def test_measured_cuda_peaks_get_their_columns():
    from dataclasses import replace

    import torchprof_lab
    from torch import nn

    b = torchprof_lab.benchmark(nn.Linear(4, 4), (4,), [2], min_time=0.0, min_runs=3, warmup=0, warmup_time=0.0)
    assert "Max allocated" not in b.to_table()  # a CPU run measures no allocator peak
    row = replace(b.rows[0], max_memory_allocated=3 * 2 ** 20, max_memory_reserved=20 * 2 ** 20)
    text = replace(b, rows=(row,)).to_table()
    assert "Max allocated" in text and "3.0 MiB" in text and "20.0 MiB" in text
    assert replace(b, rows=(row,)).to_dict()["rows"][0]["max_memory_reserved"] == 20 * 2 ** 20
