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


def _bench():
    return torchprof_lab.benchmark(nn.Linear(4, 4), (4,), [2], min_time=0.0, min_runs=3, warmup=0, warmup_time=0.0)


def test_per_layer_line_names_what_the_whole_is_and_never_a_negative_share():
    from dataclasses import replace

    b = _bench()
    layers = {"": 0.004, "a": 0.001, "b": 0.002, "b.0": 0.0015}  # top level: a and b, 3 ms in all
    forward = replace(b, layer_latency=layers, layer_latency_total=0.004).to_table()
    assert ("Per-layer pass: top-level layers sum to 3.000 ms of a 4.000 ms forward; 25.0% of it outside them, "
            "hooks included") in forward
    step = replace(b, mode="train", layer_latency=layers, layer_latency_total=0.012).to_table()
    assert ("top-level layers sum to 3.000 ms of a 12.000 ms training step (forward, backward and optimizer step; "
            "layers time their forward only); 75.0% of it outside them") in step
    noisy = replace(b, layer_latency=layers, layer_latency_total=0.0025).to_table()  # medians of separate samples
    assert ("sum to 3.000 ms of a 2.500 ms forward; the layers' medians sum to more than the forward's median: "
            "each is the median of its own samples (timing noise, hooks included)") in noisy
    assert "% of it outside" not in noisy and "-20.0%" not in noisy


def test_threads_in_the_timing_title_are_pluralised():
    from dataclasses import replace

    b = _bench()
    for threads, text in ((1, ", 1 thread;"), (2, ", 2 threads;")):
        title = replace(b, environment={**b.environment, "intra_op_threads": threads}).to_table().splitlines()[0]
        assert text in title


def test_output_text_of_none_outputs_containers_and_modules_not_run():
    from torchprof_lab.report.units import shape_text

    class Attention(nn.Module):  # returns (output, None) as transformers' attention does without weights
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            return self.proj(x), None

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = nn.ModuleList([Attention(), Attention()])  # iterated, never called itself
            self.spare = nn.Sequential(nn.Linear(8, 8))  # not used at all

        def forward(self, x):
            for block in self.h:
                x = block(x)[0]
            return x

    r = torchprof_lab.count(Net(), (8,), batch_size=2)
    h, spare = r.layer("h"), r.layer("spare")
    assert (h.calls, h.descendants_ran, h.macs, h.params) == (0, True, 2 * 2 * 64, 2 * 72)
    assert (spare.calls, spare.descendants_ran) == (0, False) and not r.layer("spare.0").descendants_ran
    assert r.layer("h.0").output_shape == [(2, 8), "None"]
    rows = {line.split()[0]: line.split() for line in r.to_table().splitlines()[2:10]}
    assert rows["h"][:3] == ["h", "ModuleList", "(container)"]
    assert rows["h.0"][:4] == ["h.0", "Attention", "[2x8,", "None]"]
    assert rows["spare"][:4] == ["spare", "Sequential", "(not", "run)"]
    assert "NoneType" not in r.to_table() + r.to_markdown() + r.to_json()
    html = r.to_html()
    assert ">(container)</td>" in html and ">(not run)</td>" in html and "[2x8, None]" in html
    assert shape_text(None) == "-" and shape_text((2, 8)) == "2x8" and shape_text(()) == "scalar"
    assert shape_text({"logits": (1, 5), "cache": "DynamicCache", "past": None}) == \
        "{logits: 1x5, cache: DynamicCache, past: None}"
    assert shape_text("nested(2, 4..6, 32)") == "nested(2, 4..6, 32)"


def test_the_timing_table_prints_its_cells_as_formatted():
    """A million samples/s reads 1392880.0 in the table and the Markdown, never 1.39288e+06 (tabulate's
    own number parsing), and the batch-scaling picture's axis says 1 M."""
    from torchprof_lab.report.render import render
    from torchprof_lab.timing.result import BenchmarkReport, BenchmarkRow
    from torchprof_lab.timing.stats import LatencyStats

    rows = (BenchmarkRow(4096, latency=LatencyStats.of([4096 / 1392880.0] * 20)),
            BenchmarkRow(1, latency=LatencyStats.of([1 / 1392880.0] * 20)))
    bench = BenchmarkReport("m", "(8,)", "cpu", "fp32", "inference", "perf_counter", {},
                            {"cpu": "x", "intra_op_threads": 1}, rows)
    for text in (render(bench), render(bench, "markdown")):
        assert "1392880.0" in text and "e+0" not in text
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    from torchprof_lab.report.plot import batch_scaling_figure

    fig = batch_scaling_figure(bench, plt)
    assert isinstance(fig.axes[0].yaxis.get_major_formatter(), EngFormatter)
    plt.close(fig)


def test_a_benchmark_and_a_memory_report_alone_write_the_csv_blocks_of_a_profile():
    """The same raw blocks whether a result is alone or inside a profile's CSV."""
    from torchprof_lab.report.render import render

    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    p = torchprof_lab.profile(model, (8,), batch_sizes=[2], memory=dict(optimizer="adam"), train=True,
                              min_time=0.01, warmup=0, hardware=False)
    blocks = render(p, "csv").split("\n\n")
    assert len(blocks) == 4 and blocks[2:] == render(p.memory, "csv").split("\n\n")
    assert blocks[1].splitlines()[0] == render(p.timing, "csv").splitlines()[0]
    categories = dict(line.split(",") for line in blocks[2].splitlines()[1:])
    assert int(categories["peak"]) == p.memory.peak_bytes and int(categories["gradients"]) == 8 * 9 * 4
    layers = list(csv.DictReader(io.StringIO(blocks[3])))
    assert [(r["name"], int(r["saved_for_backward_bytes"])) for r in layers] == \
        [(m.name, m.saved_bytes) for m in p.memory.layers]


def test_the_csv_carries_the_roofline_columns_of_the_table():
    from torchprof_lab.report.render import render

    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
    p = torchprof_lab.profile(model, (64,), batch_sizes=[8], per_layer=True, min_time=0.01, warmup=0)
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(render(p, "csv").split("\n\n")[0]))}
    for layer in p.layers:
        assert rows[layer.name]["bound"] == layer.bound in ("compute", "memory")
        assert float(rows[layer.name]["min_time"]) == layer.min_time > 0
        assert float(rows[layer.name]["time_over_bound"]) == layer.time_over_bound


def test_the_timing_csv_carries_every_column_of_the_table():
    """GPU power, energy, clock, temperature and CUDA peak memory, and the spread: in the CSV as in the table."""
    from torchprof_lab.hardware.nvml import PowerSummary
    from torchprof_lab.report.render import render
    from torchprof_lab.timing.result import BenchmarkReport, BenchmarkRow
    from torchprof_lab.timing.stats import LatencyStats

    power = PowerSummary(1.0, 250.0, "energy counter", 250.0, 300.0, 1700.0, 1750.0, 71.0)
    row = BenchmarkRow(8, latency=LatencyStats.of([0.01] * 20), power=power, samples_processed=1000,
                       max_memory_allocated=2 ** 30, max_memory_reserved=2 ** 31)
    bench = BenchmarkReport("m", "(8,)", "cuda:0", "fp32", "inference", "cuda_event", {},
                            {"gpu": "H100", "intra_op_threads": 1}, (row,))
    table_header = render(bench).splitlines()[1]
    assert all(word in table_header for word in ("IQR %", "Mean W", "Max allocated", "Max reserved"))
    got = next(csv.DictReader(io.StringIO(render(bench, "csv"))))
    assert float(got["mean_w"]) == power.mean_w and float(got["joules_per_sample"]) == row.joules_per_sample
    assert float(got["min_sm_clock_mhz"]) == power.min_sm_clock_mhz and float(got["max_temperature_c"]) == 71.0
    assert int(got["max_memory_allocated"]) == 2 ** 30 and int(got["max_memory_reserved"]) == 2 ** 31
    assert float(got["relative_iqr"]) == row.latency.relative_iqr == 0.0
