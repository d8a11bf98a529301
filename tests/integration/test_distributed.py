"""DDP on torch.distributed for real: 2 gloo processes on loopback under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchprof_lab.cli import main
from torchprof_lab.distributed import allreduce_bytes_per_rank, scaling_efficiency

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


def test_two_gloo_ranks_gathered_on_rank_0():
    result = torchrun("ddp_models:tiny", "--input-shape", "3,16,16", "--batch", "4", "--train", "--ddp",
                      "--min-time", "0.2", "--warmup", "1", "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    start = result.stdout.index("{")
    data = json.loads(result.stdout[start:])  # only rank 0 prints: exactly one report
    assert result.stdout.count('"world_size"') == 1
    assert data["world_size"] == 2 and data["backend"] == "gloo"
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
    env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
    try:
        assert main(["resnet18", "--ddp", "--train"]) == 2
        assert "torchrun" in capsys.readouterr().err
    finally:
        os.environ.update(env)
