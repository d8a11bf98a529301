"""Utilisation and roofline on a CPU profile (what CI can run), and the pictures."""

import json

import pytest
import torch
from torch import nn

import torchprof_lab
from torchprof_lab.errors import ProfilerError
from torchprof_lab.hardware.ceiling import Ceiling
from dataclasses import replace

from torchprof_lab.hardware.compare import compare
from torchprof_lab.report.plot import roofline_png

FAST = dict(min_time=0.05, min_runs=5, warmup=1, warmup_time=0.0)


def model():
    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 10))


def test_ceiling_arithmetic():
    c = Ceiling("x", "fp32", peak_flops=100e9, peak_bandwidth=10e9, source="test")
    assert c.ridge_point == 10
    assert c.bound(1000, 10) == "compute" and c.bound(1000, 1000) == "memory"
    assert c.min_time(100e9, 1e9) == 1.0 and c.min_time(1e9, 100e9) == 10.0
    # a CPU: utilisation against the theoretical peak, the roofline on the measured roofs
    cpu = Ceiling("cpu", "fp32", peak_flops=300e9, peak_bandwidth=20e9, source="test",
                  attainable_flops=200e9, attainable_bandwidth=20e9)
    assert cpu.ridge_point == 10 and cpu.min_time(200e9, 0) == 1.0


def test_cpu_profile_carries_utilisation_and_roofline():
    r = torchprof_lab.profile(model(), (3, 32, 32), batch_sizes=[4], per_layer=True, **FAST)
    ceiling = r.timing.ceiling
    assert ceiling.device == "cpu" and ceiling.peak_flops > 1e9 and ceiling.peak_bandwidth > 1e8
    assert ceiling.peak_flops == torchprof_lab.hardware.cpu.cpu_info().peak_flops("fp32")  # the ISA formula
    assert 0 < ceiling.attainable_flops <= ceiling.peak_flops  # the measured matmul is the roof only
    row = r.timing.rows[0]
    assert row.utilisation == pytest.approx(row.achieved_flops / ceiling.peak_flops)
    assert 0 < row.utilisation < 1
    assert row.bandwidth_utilisation == pytest.approx(row.bytes_per_batch / row.latency.p50 / ceiling.peak_bandwidth)
    assert row.bytes_per_batch == r.bytes
    conv = r.layer("0")
    assert conv.bound in ("compute", "memory")
    assert conv.min_time == pytest.approx(max(conv.flops / ceiling.roof_flops, conv.bytes / ceiling.roof_bandwidth))
    assert conv.time_over_bound == pytest.approx(conv.latency / conv.min_time)
    text = str(r)
    assert "Util %" in text and "Roofline ms" in text and "Peak:" in text
    assert json.loads(r.to_json())["timing"]["ceiling"]["ridge_point"] == pytest.approx(ceiling.ridge_point)


def test_training_rows_report_mfu():
    r = torchprof_lab.profile(model(), (3, 32, 32), batch_sizes=[4], train=True, **FAST)
    row = r.timing.rows[0]
    assert row.flops_per_batch == r.total_flops and row.utilisation == pytest.approx(
        r.total_flops / row.latency.p50 / r.timing.ceiling.peak_flops)
    assert "MFU %" in str(r)


def test_known_ceiling_gives_exact_utilisation_and_changes_nothing():
    r = torchprof_lab.profile(model(), (3, 32, 32), batch_sizes=[2], hardware=False, **FAST)
    assert r.timing.ceiling is None and r.layers[0].bound is None
    before = r.to_json()
    result = compare([*r.layers, r.model_record], r.timing.rows, Ceiling("cpu", "fp32", 1e12, 1e11, "given"))
    row = r.timing.rows[0]
    assert result.rows[0].utilisation == pytest.approx(r.flops / row.latency.p50 / 1e12)
    assert result.rows[0].bandwidth_utilisation == pytest.approx(r.bytes / row.latency.p50 / 1e11)
    conv = r.layer("0")
    assert result.layers["0"].min_time == pytest.approx(max(conv.flops / 1e12, conv.bytes / 1e11))
    assert result.layers[""].bound == ("compute" if r.intensity >= 10 else "memory")
    assert r.to_json() == before  # a pure function: the profile is a value
    with pytest.raises(Exception):  # and the records are frozen
        row.utilisation = 0.5


def test_roofline_picture(tmp_path):
    r = torchprof_lab.profile(model(), (3, 32, 32), batch_sizes=[2], per_layer=True, **FAST)
    path = roofline_png(r, str(tmp_path / "roof.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_roofline_needs_a_ceiling_and_says_so(tmp_path):
    r = torchprof_lab.count(model(), (3, 32, 32))
    with pytest.raises(ProfilerError, match="ceiling"):
        roofline_png(r, str(tmp_path / "x.png"))


def test_missing_matplotlib_is_a_clear_message(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ProfilerError, match="pip install"):
        roofline_png(object(), str(tmp_path / "x.png"))


def test_utilisation_against_the_clock_nvml_saw():
    from types import SimpleNamespace

    r = torchprof_lab.profile(model(), (3, 32, 32), batch_sizes=[2], hardware=False, **FAST)
    row = replace(r.timing.rows[0], power=SimpleNamespace(mean_sm_clock_mhz=705.0, joules=None))  # half clock
    use = compare([], [row], Ceiling("cuda:0", "fp16", 312e12, 1.555e12, "A100 table", clock_mhz=1410.0)).rows[0]
    assert use.utilisation_at_observed_clock == pytest.approx(2 * use.utilisation)
    assert use.utilisation == pytest.approx(row.achieved_flops / 312e12)


def test_batch_scaling_picture_draws_the_rows(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from torchprof_lab.report.plot import batch_scaling_figure, batch_scaling_png

    class OomAbove(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            if x.shape[0] > 6:
                raise MemoryError("pretend the batch does not fit")
            return self.fc(x)

    b = torchprof_lab.benchmark(OomAbove(), (8,), [1, 2, 4, 8], max_batch=True, **FAST)
    fig = batch_scaling_figure(b, plt)
    left, right = fig.axes
    ok = [r for r in b.rows if r.ok]
    assert list(left.lines[0].get_xdata()) == [1, 2, 4]
    assert list(left.lines[0].get_ydata()) == pytest.approx([r.samples_per_s for r in ok])
    assert list(right.lines[0].get_ydata()) == pytest.approx([r.latency.p50 * 1e3 for r in ok])
    labels = left.get_legend_handles_labels()[1]
    assert "OOM at 8" in labels and "largest that fits: 6" in labels
    plt.close(fig)
    png = batch_scaling_png(b, str(tmp_path / "b.png"))
    assert open(png, "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"



def test_a_cpu_without_a_known_isa_keeps_its_roofline_and_leaves_utilisation_empty(monkeypatch):
    from torchprof_lab.hardware import ceiling as ceiling_module, cpu

    real = cpu._cpuinfo
    arm = lambda: [{k: v for k, v in block.items() if k != "flags"} | {"Features": "fp asimd"} for block in real()]
    monkeypatch.setattr(cpu, "_cpuinfo", arm)  # an ARM core lists Features, not x86 flags
    c = ceiling_module.ceiling_for(torch.device("cpu"), "fp32")
    assert c.peak_flops is None and c.attainable_flops > 0 and any("no theoretical fp32 peak" in n for n in c.notes)
    r = torchprof_lab.profile(model(), (3, 32, 32), batch_sizes=[2], **FAST)
    assert r.timing.rows[0].utilisation is None and r.layer("0").bound in ("compute", "memory")
    assert "Peak: unknown" in str(r)
