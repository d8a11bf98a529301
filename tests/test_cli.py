"""The command line, run as a user would: a subprocess, no traceback on bad input."""

import json
import subprocess
import sys

import pytest
import torch

from torchprof_lab.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "torchprof_lab", *args], capture_output=True, text=True,
                          timeout=300)


def test_table_on_cpu():
    result = run("resnet18", "--batch", "2", "--depth", "1")
    assert result.returncode == 0, result.stderr
    assert "MACs" in result.stdout and "Total" in result.stdout and "3.63 G" in result.stdout


def test_json_to_file(tmp_path):
    out = tmp_path / "r.json"
    assert main(["mobilenet_v2", "--device", "meta", "--format", "json", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert abs(data["macs"] / 1e9 - 0.301) < 0.0015


def test_factory_spec_and_backward(capsys):
    assert main(["torchvision.models:resnet18", "--input-shape", "3,32,32", "--batch", "2", "--backward",
                 "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("name,type,depth") and int(lines[-1].split(",")[-2]) > 0


@pytest.mark.parametrize("args,needle", [
    (["resnet5"], "did you mean resnet50"),
    (["resnet18", "--input-shape", "4,64,64"], "'conv1' (Conv2d)"),
    pytest.param(["resnet18", "--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    (["resnet18", "--device", "tpu9"], "unknown device"),
])
def test_user_errors_exit_2_without_traceback(args, needle):
    result = run(*args)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_bad_argument_values_exit_2():
    assert run("resnet18", "--batch", "0").returncode == 2
    assert run("resnet18", "--input-shape", "3,a").returncode == 2


def test_timing_flags(tmp_path):
    out = tmp_path / "t.json"
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "1,2", "--min-time", "0.05",
                 "--warmup", "1", "--warmup-time", "0.2", "--threads", "1", "--per-layer", "--format", "json", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [row["batch_size"] for row in data["timing"]["rows"]] == [1, 2]
    assert data["timing"]["environment"]["intra_op_threads"] == 1
    assert data["timing"]["settings"]["warmup_time_s"] == 0.2
    assert data["layers"][0]["latency"] > 0


def test_train_and_no_timing(capsys):
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "2", "--train", "--min-time", "0.05",
                 "--warmup", "1"]) == 0
    text = capsys.readouterr().out
    assert "Timing (train" in text and "Train FLOPs" in text
    assert main(["resnet18", "--input-shape", "3,32,32", "--no-timing"]) == 0
    assert "Timing" not in capsys.readouterr().out


def test_bad_timing_flags_exit_2():
    assert run("resnet18", "--batch", "1,x").returncode == 2
    assert run("resnet18", "--dtype", "fp8").returncode == 2
    result = run("resnet18", "--dtype", "tf32", "--no-timing")
    assert result.returncode == 0  # counting ignores the timing precision
    result = run("resnet18", "--dtype", "tf32", "--min-time", "0")
    assert result.returncode == 2 and "tf32" in result.stderr and "Traceback" not in result.stderr
