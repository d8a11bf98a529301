"""DDP and FSDP2 on torch.distributed for real: 2 gloo processes on loopback under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ddp_models  # the factories the ranks build (tests/ is on sys.path: conftest.py)
from torchprof_lab import memory
from torchprof_lab.cli import main
from torchprof_lab import distributed
from torchprof_lab.distributed import (DistributedReport, RankRow, allreduce_bytes_per_rank, scaling_efficiency,
                                       shard_traffic_bytes_per_rank)
from torchprof_lab.timing.stats import LatencyStats

TESTS = Path(__file__).parents[1]


def torchrun(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--standalone", "-m", "torchprof_lab", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_arithmetic():
    assert allreduce_bytes_per_rank(100, 2) == 100
    assert allreduce_bytes_per_rank(100, 4) == 150
    assert allreduce_bytes_per_rank(100, 1) == 0
    assert scaling_efficiency(180, 2, 100) == 0.9
    assert shard_traffic_bytes_per_rank(100, 2) == 150
    assert shard_traffic_bytes_per_rank(100, 4) == 225


def _report(comm_s, strategy="ddp"):
    rows = tuple(RankRow(rank, "host", "cpu", 1, LatencyStats.of([0.010, 0.010, 0.011]), 4, comm)
                 for rank, comm in enumerate(comm_s))
    return DistributedReport("ddp_models:tiny", "gloo", 2, 4, 1224, 300.0, "given", rows, strategy=strategy)


def test_the_report_writes_bytes_as_everywhere_and_explains_an_all_reduce_above_the_step():
    text = str(_report([0.004, 0.012]))
    assert "Gradient all-reduce per step: 1.2 KiB sent per rank (parameters 1.2 KiB x 2(N-1)/N)" in text
    assert " MB" not in text and text.startswith("DDP training step: ddp_models:tiny, 2 ranks")
    note = next(line for line in text.splitlines() if line.startswith("All-reduce ms/step is above"))
    assert note.startswith("All-reduce ms/step is above the step's p50 on rank 1: it is not a share of the step")
    assert "overlap the backward pass" in note
    assert "is above the step's p50 on ranks 0, 1" in str(_report([0.02, 0.03]))
    assert "All-reduce ms/step is above" not in str(_report([0.004, 0.005]))
    sharded = str(_report([None, None], strategy="fsdp2"))
    assert "reduce-scatter per step: 1.8 KiB sent per rank (parameters 1.2 KiB x 3(N-1)/N)" in sharded
    assert "All-reduce ms/step" not in sharded


def test_run_under_torchrun_passes_the_models_name_on(monkeypatch):
    import torch

    seen = {}
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: seen.update(backend=backend))
    monkeypatch.setattr(distributed.dist, "barrier", lambda: None)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed, "ddp_benchmark", lambda model, shape, batch, **kw: seen.update(kw) or "report")
    threads = torch.get_num_threads()
    assert distributed.run_under_torchrun(ddp_models.tiny, (3, 16, 16), 4, threads=threads,
                                          name="ddp_models:tiny", memory=True) == "report"
    assert seen == {"backend": "gloo", "name": "ddp_models:tiny", "memory": True}
    assert torch.get_num_threads() == threads


def test_two_gloo_ranks_gathered_on_rank_0():
    result = torchrun("ddp_models:tiny", "--input-shape", "3,16,16", "--batch", "4", "--train", "--ddp",
                      "--memory", "--optimizer", "adam", "--min-time", "0.2", "--warmup", "1", "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    start = result.stdout.index("{")
    data = json.loads(result.stdout[start:])  # only rank 0 prints: exactly one report
    assert result.stdout.count('"world_size"') == 1
    assert data["world_size"] == 2 and data["backend"] == "gloo" and data["model"] == "ddp_models:tiny"
    ranks = data["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    for r in ranks:
        assert r["samples_per_s"] == pytest.approx(4 / r["latency_s"]["p50"]) and r["comm_s_per_step"] > 0
    assert data["total_samples_per_s"] == pytest.approx(sum(r["samples_per_s"] for r in ranks))
    assert data["slowest_rank"] == max(ranks, key=lambda r: r["latency_s"]["p50"])["rank"]
    assert data["scaling_efficiency"] == pytest.approx(
        data["total_samples_per_s"] / (2 * data["single_samples_per_s"]))
    params = (3 * 8 * 9 + 8) + (8 * 10 + 10)
    assert data["param_bytes"] == params * 4
    assert data["allreduce_bytes_per_step"] == pytest.approx(params * 4 * 2 * (2 - 1) / 2)
    assert data["strategy"] == "ddp" and data["comm_bytes_per_step"] == data["allreduce_bytes_per_step"]

    # each rank's memory: the single process's step plus DDP's gradient buckets, one copy of the gradients
    size = params * 4
    alone = memory(ddp_models.tiny(), (3, 16, 16), 4, train=True, optimizer="adam")  # measured on the CPU
    predicted = memory(ddp_models.tiny(), (3, 16, 16), 4, train=True, optimizer="adam", device="meta", target="cpu")
    for r in ranks:
        m = r["memory"]
        assert m["device"] == "cpu" and m["optimizer"] == "adam" and m["batch_size"] == 4
        assert m["by_category"]["comm_buffers"] == size  # the buckets
        assert m["by_category"]["gathered_parameters"] == 0
        assert m["by_category"]["parameters"] == size
        assert m["largest_by_category"]["gradients"] == size  # every gradient, as without DDP
        assert m["by_category"]["optimizer_state"] == 2 * size + 4 * 4  # Adam's two moments, 4 step counters
        assert m["peak_bytes"] == alone.peak_bytes + size and m["peak_at"] == alone.peak_at
        assert {c: v for c, v in m["by_category"].items() if c not in ("comm_buffers", "gathered_parameters")} == \
            alone.by_category
        # the meta prediction has no step counters: Adam keeps them on the CPU, outside a GPU's memory
        assert m["peak_bytes"] == predicted.peak_bytes + size + 4 * 4


def test_fsdp2_shards_parameters_gradients_and_adam_state():
    result = torchrun("ddp_models:mlp", "--input-shape", "64", "--batch", "4", "--train", "--fsdp", "--memory",
                      "--optimizer", "adam", "--min-time", "0.1", "--warmup", "1", "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["strategy"] == "fsdp2" and data["world_size"] == 2 and data["allreduce_bytes_per_step"] is None
    layers = [(64, 256), (256, 256), (256, 64)]
    size = sum(i * o + o for i, o in layers) * 4
    assert data["param_bytes"] == size
    assert data["comm_bytes_per_step"] == pytest.approx(size * 3 / 2)
    largest_layer = (256 * 256 + 256) * 4
    alone = memory(ddp_models.mlp(), (64,), 4, train=True, optimizer="adam")
    assert [r["rank"] for r in data["ranks"]] == [0, 1]
    for r in data["ranks"]:
        assert r["comm_s_per_step"] is None
        m, most = r["memory"], r["memory"]["largest_by_category"]
        assert m["by_category"]["parameters"] == size // 2  # each rank holds half of every weight and bias
        assert most["gradients"] == size // 2  # reduce-scattered: half of every gradient
        assert m["by_category"]["optimizer_state"] == 2 * (size // 2) + 6 * 4  # Adam's moments, sharded alike
        # one layer unsharded at a time, each its own fully_shard group: the largest is the middle one
        assert most["gathered_parameters"] == largest_layer
        # the flat all-gather and reduce-scatter buffers: the middle layer's and another layer's at least
        # (usually the first layer's, still held until the next all-gather); how many overlap depends on
        # when gloo's threads finish their work (under load: the middle one's and two of the last one's),
        # never more than every layer's two buffers at once
        assert largest_layer + (256 * 64 + 64) * 4 <= most["comm_buffers"] <= 2 * size
        assert m["peak_bytes"] == sum(m["by_category"].values()) < alone.peak_bytes


def test_a_failing_rank_fails_the_command_cleanly():
    result = torchrun("ddp_models:fails_on_rank_1", "--input-shape", "3,16,16", "--train", "--ddp",
                      "--min-time", "0.1", timeout=180)
    assert result.returncode != 0
    assert ("rank 1 failed: the factory ddp_models:fails_on_rank_1 raised RuntimeError: model construction "
            "failed on purpose") in result.stderr
    leftover = subprocess.run(["pgrep", "-f", "ddp_models:fails_on_rank_1"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_ddp_needs_torchrun_and_train(capsys):
    assert main(["resnet18", "--ddp"]) == 2
    assert "--train" in capsys.readouterr().err
    assert main(["resnet18", "--fsdp", "--memory"]) == 2
    assert "--fsdp times a training step: add --train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["resnet18", "--ddp", "--fsdp", "--train"])
    assert "--ddp and --fsdp are two strategies" in capsys.readouterr().err
    assert main(["resnet18", "--fsdp", "--train", "--sweep"]) == 2  # errors name the flag given
    assert capsys.readouterr().err.strip() == "torchprof_lab: error: --sweep does not apply to --fsdp"
    env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
    try:
        assert main(["resnet18", "--ddp", "--train"]) == 2
        assert "torchrun" in capsys.readouterr().err
    finally:
        os.environ.update(env)
