"""The command line, run as a user would: a subprocess, no traceback on bad input."""

import json
import subprocess
import sys

import pytest

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
    (["resnet18", "--device", "cuda"], "CUDA is not available"),
    (["resnet18", "--device", "tpu9"], "unknown device"),
])
def test_user_errors_exit_2_without_traceback(args, needle):
    result = run(*args)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_bad_argument_values_exit_2():
    assert run("resnet18", "--batch", "0").returncode == 2
    assert run("resnet18", "--input-shape", "3,a").returncode == 2
