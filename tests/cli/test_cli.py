"""The command line, in-process through main(argv) (one subprocess smoke test): every mode
honours --format and --output, flags that do not apply are refused, and nothing prints a
traceback."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision

from torchprof_lab.cli import _first_line, build_parser, main

FAST = ["--min-time", "0.05", "--warmup", "1", "--warmup-time", "0"]


def test_smoke_as_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "torchprof_lab", "resnet18", "--batch", "2", "--depth", "1",
                             "--no-timing"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "MACs" in result.stdout and "Total" in result.stdout and "3.63 G" in result.stdout  # 2 x 1.814 GMACs


def test_a_reader_that_stops_early_is_no_error(tmp_path, monkeypatch, capsys):
    """`... | head`: the pipe closes before the report is written; the run still exits 0, silently,
    and stdout then points at /dev/null (Python's own flush at exit would meet the pipe again)."""
    spare = os.open(tmp_path / "stdout", os.O_WRONLY | os.O_CREAT)  # stands in for the pipe's descriptor

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return spare

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["resnet18", "--device", "meta", "--depth", "1"]) == 0
    assert capsys.readouterr().err == "" and os.path.samefile(f"/proc/self/fd/{spare}", os.devnull)
    os.close(spare)


def test_a_broken_pipe_inside_the_run_still_fails_it(tmp_path, monkeypatch, capsys):
    """Only the report's own write may meet a reader gone away; a broken pipe in the model fails the run."""
    (tmp_path / "pipe_model.py").write_text(
        "import torch\n\nclass Net(torch.nn.Module):\n    def forward(self, x):\n"
        "        raise BrokenPipeError(32, 'Broken pipe')\n\ndef make():\n    return Net()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "r.txt"
    assert main(["pipe_model:make", "--input-shape", "4", "--no-timing", "--output", str(out)]) != 0
    assert "Broken pipe" in capsys.readouterr().err and not out.exists()


def test_json_to_file(tmp_path):
    out = tmp_path / "r.json"
    assert main(["mobilenet_v2", "--device", "meta", "--format", "json", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert abs(data["macs"] / 1e9 - 0.301) < 0.0015 and data["dtype"] == "fp32"


def test_factory_spec_and_backward(capsys):
    assert main(["torchvision.models:resnet18", "--input-shape", "3,32,32", "--batch", "2", "--backward",
                 "--no-timing", "--format", "csv"]) == 0
    text = capsys.readouterr().out
    total = list(csv.DictReader(io.StringIO(text)))[-1]
    assert text.startswith("name,type,depth") and total["name"] == "(total)" and int(total["backward_bytes"]) > 0
    assert total["bound"] == total["min_time"] == ""  # no hardware comparison when only counting


@pytest.mark.parametrize("args,needle", [
    (["resnet5"], "did you mean resnet50"),
    (["os:path"], "unknown model 'os:path' (os.path is a module, not a callable that builds the model)"),
    (["os:pathh"], "did you mean os:fspath"),  # callables only: not os:path, a module
    (["resnet18", "--input-shape", "4,64,64", "--no-timing"], "'conv1' (Conv2d)"),
    pytest.param(["resnet18", "--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    (["resnet18", "--device", "tpu9"], "unknown device"),
    (["--device-info", "--batch", "4"], "--batch does not apply to --device-info"),
    (["resnet18", "--no-timing", "--sweep"], "--sweep does not apply to counting only"),
    (["resnet18", "--device", "meta", "--per-layer", "--min-time", "1"], "--min-time, --per-layer do not apply"),
    (["resnet18", "--compare-dtypes", "bf16", "--per-layer"], "--per-layer does not apply to --compare-dtypes"),
    (["resnet18", "--sweep-budget", "5"], "--sweep-budget applies to --sweep"),
    (["resnet18", "--batch", "3,5", "--sweep"], "--sweep times powers of two from 1 up, so --batch would not be "
                                                "timed: give one of them"),
    (["resnet18", "--ddp", "--compare-dtypes", "bf16"], "separate modes"),
    (["resnet18", "--batch", "1,2", "--compare-dtypes", "bf16"], "takes one batch size"),
    (["resnet18", "--batch", "1,4", "--no-timing"], "counting only (--no-timing or --device meta) takes one batch"),
    (["resnet18", "--no-timing", "--batch-plot", "x.png"], "--batch-plot does not apply"),
    (["resnet18", "--batch-plot", "x.png"], "draws several batch sizes"),
    (["--device-info", "resnet18"], "give no model"),
    (["resnet18", "--compare-dtypes", "fp32,nope"], "unknown precision 'nope'"),
])
def test_user_errors_exit_2_in_one_line(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["resnet18", "--batch", "0"], ["resnet18", "--input-shape", "3,a"],
                                  ["resnet18", "--batch", "1,x"], ["resnet18", "--dtype", "fp8"],
                                  ["resnet18", "--min-time", "inf"], ["resnet18", "--min-time", "nan"]])
def test_bad_values_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("torchprof_lab: error: argument --") and err.count("\n") == 1


@pytest.mark.parametrize("args,line", [
    (["resnet18", "--bogus"], "unrecognized arguments: --bogus (python -m torchprof_lab --help lists the flags)"),
    (["resnet18", "--depth", "0"], "argument --depth: expected a positive integer, got '0'"),
    (["resnet18", "--batch", "abc"], "argument --batch: 'abc' is not a positive integer: expected positive "
                                     "integers like 1,8,64"),
    (["resnet18", "--format", "xml"], "argument --format: invalid choice: 'xml' (choose from 'table', 'json', "
                                      "'csv', 'markdown', 'html')"),
    (["resnet18", "--dtype", "fp8"], "argument --dtype: unknown precision 'fp8': use one of fp32, tf32, fp16, bf16 "
                                     "(or a torch dtype / full name such as bfloat16)"),
    (["hf:gpt2", "--config", "n_layer"], "argument --config: expected key=value such as num_hidden_layers=2, "
                                         "got 'n_layer'"),
    (["resnet18", "--ddp", "--fsdp", "--train"], "--ddp and --fsdp are two strategies of the distributed step: "
                                                 "give one"),
    (["resnet18", "--batch"], "argument --batch: expected one argument (give a value; one that begins "
                              "with '-' is written --batch=VALUE)"),
    (["resnet18", "--memory", "--fit", "-1GiB"], "argument --fit: expected one argument (give a value; one "
                                                 "that begins with '-' is written --fit=VALUE)"),
    (["resnet18", "--memory", "--fit=-1GiB"], "argument --fit: a memory budget must be a positive size "
                                              "(1 byte or more), got '-1GiB'"),
])
def test_argparse_errors_are_one_line_like_the_tools_own(args, line, capsys):
    """argparse's errors (its ~24 lines of usage before) read as the tool's: one line, exit 2."""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == ""
    assert captured.err == f"torchprof_lab: error: {line}\n"


@pytest.mark.parametrize("flag,text,values", [
    ("--input-shape", "3x224x224", (3, 224, 224)), ("--input-shape", "3, 224, 224", (3, 224, 224)),
    ("--input-shape", "3X32 x 32", (3, 32, 32)), ("--batch", "1, 8,64", [1, 8, 64]), ("--batch", "2", [2]),
    ("--seq-len", "128,1024", [128, 1024]),
])
def test_lists_of_positive_integers(flag, text, values):
    args = build_parser().parse_args(["resnet18", flag, text])
    assert getattr(args, flag[2:].replace("-", "_")) == values


@pytest.mark.parametrize("flag,text,message", [
    ("--input-shape", "3,x,224", "'x' in '3,x,224' is not a positive integer: expected positive integers like "
                                 "3,224,224"),  # was read as (3, 224)
    ("--batch", "1,,8", "'1,,8' has an empty part: expected positive integers like 1,8,64"),  # was read as 1,8
    ("--batch", "1,8,", "'1,8,' has an empty part"),  # a trailing comma too: the user may have meant more
    ("--input-shape", "3x224x", "'3x224x' has an empty part"),
    ("--input-shape", "3,0,4", "'0' in '3,0,4' is not a positive integer"),
    ("--batch", "1x8", "'1x8' is not a positive integer"),  # x separates a shape's sizes, not batch sizes
    ("--seq-len", "1_024", "'1_024' is not a positive integer"),
    ("--batch", "8,-1", "'-1' in '8,-1' is not a positive integer"),
])
def test_every_part_of_a_list_must_be_a_positive_integer(flag, text, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["resnet18", flag, text])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"torchprof_lab: error: argument {flag}: {message}")
    assert err.count("\n") == 1


def test_a_message_whose_first_line_ends_in_a_colon_keeps_its_reason(capsys):
    """pydantic-style errors ('Validation error for field 'n_layer':' then the reason on the next line)."""
    assert main(["hf:gpt2", "--config", "n_layer=two", "--no-timing"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Validation error for field 'n_layer': TypeError: Field 'n_layer' expected " \
        "int, got str (value: 'two')" in err
    assert _first_line("first:\n\n  second:\n  third\nfourth") == "first: second: third"
    assert _first_line("plain\nsecond") == "plain"
    long = _first_line("a:\n" + "b" * 1000)
    assert len(long) == 300 and long.endswith("...")
    assert _first_line("c" * 400 + "\nmore") == "c" * 400  # a long first line is never cut


def test_precision_names_are_one_table(tmp_path):
    out = tmp_path / "c.json"
    assert main(["resnet18", "--input-shape", "3,32,32", "--no-timing", "--dtype", "BFloat16", "--format", "json",
                 "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["dtype"] == "bf16" and data["param_dtype"] == "fp32"
    fp32 = json.loads(_json(["resnet18", "--input-shape", "3,32,32", "--no-timing"]))
    assert data["macs"] == fp32["macs"]  # the same work in about half the bytes (max-pool indices stay int64)
    assert data["bytes"] * 2 == pytest.approx(fp32["bytes"], rel=0.01)


def _json(args):
    buffer = io.StringIO()
    old, sys.stdout = sys.stdout, buffer
    try:
        assert main([*args, "--format", "json"]) == 0
    finally:
        sys.stdout = old
    return buffer.getvalue()


def test_timing_flags(tmp_path):
    out = tmp_path / "t.json"
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "1,2", *FAST, "--warmup-time", "0.2",
                 "--threads", "1", "--per-layer", "--format", "json", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [row["batch_size"] for row in data["timing"]["rows"]] == [1, 2]
    assert data["timing"]["environment"]["intra_op_threads"] == 1
    assert data["timing"]["settings"]["warmup_time_s"] == 0.2
    assert data["layers"][0]["latency"] > 0


def test_train_and_no_timing(capsys):
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "2", "--train", *FAST]) == 0
    text = capsys.readouterr().out
    assert "Timing (train" in text and "Train FLOPs" in text
    assert main(["resnet18", "--input-shape", "3,32,32", "--no-timing"]) == 0
    assert "Timing" not in capsys.readouterr().out
    assert main(["resnet18", "--dtype", "tf32", "--min-time", "0"]) == 2  # TF32 is CUDA's


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_device_info_in_every_format(fmt, tmp_path):
    out = tmp_path / f"d.{fmt}"
    assert main(["--device-info", "--format", fmt, "--output", str(out)]) == 0
    text = out.read_text()
    if fmt == "json":
        assert json.loads(text)["kind"] in ("cpu", "gpu")
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["field", "value"] and any(r[0] == "logical_cpus" for r in rows)
    elif fmt == "markdown":
        assert text.startswith("### ") and "| field" in text
    else:
        assert "logical_cpus" in text


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown"])
def test_compare_dtypes_in_every_format(fmt, tmp_path):
    out = tmp_path / f"p.{fmt}"
    assert main(["torchvision.models:resnet18", "--input-shape", "3,16,16", "--batch", "2", "--compare-dtypes",
                 "BF16", *FAST, "--format", fmt, "--output", str(out)]) == 0
    text = out.read_text()
    if fmt == "json":
        assert [r["dtype"] for r in json.loads(text)["rows"]] == ["fp32", "bf16"]
    elif fmt == "csv":
        assert [r[0] for r in csv.reader(io.StringIO(text))] == ["Precision", "fp32", "bf16"]
    else:
        assert "| bf16" in text and "Speed-up" in text


def test_output_is_written_atomically(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    out.write_text("the earlier report\n")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    assert main(["resnet18", "--device", "meta", "--format", "json", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "the earlier report\n"  # not truncated, not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left
    monkeypatch.undo()
    assert main(["resnet18", "--device", "meta", "--output", str(tmp_path / "missing" / "r.txt")]) == 1
    assert "does not exist" in capsys.readouterr().err
    # checked before the run: the model (no such name) is never built, the error names the flag
    for flag in ("--output", "--trace", "--roofline", "--batch-plot"):
        assert main(["no_such_model", "--batch", "1,2", flag, str(tmp_path / "missing" / "f")]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"torchprof_lab: error: cannot write {flag} {tmp_path / 'missing' / 'f'}: the folder "
                       f"{tmp_path / 'missing'} does not exist")
        assert main(["no_such_model", "--batch", "1,2", flag, str(tmp_path)]) == 1  # a folder, not a file
        assert capsys.readouterr().err.strip() == (f"torchprof_lab: error: cannot write {flag} {tmp_path}: it is a "
                                                   f"folder (name a file in it)")
    link = tmp_path / "latest.txt"  # a link is written through: its target's folder is the one checked
    link.symlink_to(tmp_path / "missing" / "dated.txt")
    assert main(["no_such_model", "--output", str(link)]) == 1
    assert capsys.readouterr().err.strip() == (f"torchprof_lab: error: cannot write --output {link}: the folder "
                                               f"{tmp_path / 'missing'} does not exist")


def test_written_files_get_a_new_files_mode_or_keep_the_replaced_ones(tmp_path, monkeypatch):
    """mkstemp makes 0600 files: a report, trace or baseline must read as any file the user writes."""
    import stat

    from torchprof_lab.report import write as write_module
    from torchprof_lab.report.write import write_atomically

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    old_mask = os.umask(0o022)
    try:
        assert write_atomically(str(tmp_path / "new.txt"), "a") == str(tmp_path / "new.txt")
        assert mode(tmp_path / "new.txt") == 0o644 and (tmp_path / "new.txt").read_text() == "a\n"
        os.umask(0o027)
        write_atomically(str(tmp_path / "group.txt"), "b")
        assert mode(tmp_path / "group.txt") == 0o640
        assert os.umask(0o027) == 0o027  # the umask read, never changed
        assert write_module._umask() == 0o027  # from /proc/self/status; without it, set and restored:
        monkeypatch.setattr(write_module, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(2, "no /proc")),
                            raising=False)
        assert write_module._umask() == 0o027 and os.umask(0o027) == 0o027
        monkeypatch.undo()
        kept = tmp_path / "kept.json"
        kept.write_text("old")
        kept.chmod(0o640)
        os.umask(0o022)
        write_atomically(str(kept), "new")
        assert mode(kept) == 0o640 and kept.read_text() == "new\n"
        kept.chmod(0o664)
        assert main(["resnet18", "--device", "meta", "--format", "json", "--output", str(kept)]) == 0
        assert mode(kept) == 0o664 and json.loads(kept.read_text())["params"] == 11689512
        (tmp_path / "reports").mkdir()
        dated, latest = tmp_path / "reports" / "2026-11-25.txt", tmp_path / "latest.txt"
        dated.write_text("old")
        latest.symlink_to(dated)
        assert write_atomically(str(latest), "new") == str(latest)  # written through the link, which stays
        assert latest.is_symlink() and dated.read_text() == "new\n" and latest.read_text() == "new\n"
        assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["2026-11-25.txt"]  # no temp left
    finally:
        os.umask(old_mask)


def test_faults_in_the_users_code_and_machine_are_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "raising_factory.py").write_text("def build():\n    raise RuntimeError('no GPU driver here')\n")
    (tmp_path / "broken_module.py").write_text("def build(:\n    pass\n")
    (tmp_path / "not_a_model.py").write_text("def build():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = [(["raising_factory:build", "--no-timing"], 1, "the factory raising_factory:build raised RuntimeError: "
                                                            "no GPU driver here"),
             (["broken_module:build", "--no-timing"], 2, "'broken_module' has a syntax error"),
             (["not_a_model:build", "--no-timing"], 1, "returned a int, not a torch.nn.Module"),
             (["resnet18", "--batch", "1000000", "--no-timing"], 1, "out of memory at batch 1000000")]
    for args, code, needle in cases:
        assert main(args) == code, args
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err


def test_weights_without_a_network_say_what_to_do(monkeypatch, capsys):
    import urllib.error

    import torch.hub

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    assert main(["resnet18", "--weights", "DEFAULT", "--no-timing"]) == 1
    err = capsys.readouterr().err
    assert "cannot load weights 'DEFAULT' for resnet18" in err and "without a network" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["resnet18", "--weights", "NOPE", "--no-timing"]) == 2
    assert capsys.readouterr().err == ("torchprof_lab: error: unknown weights 'NOPE' for resnet18: use DEFAULT or "
                                       "one of IMAGENET1K_V1\n")


def test_cli_device_info_and_roofline(tmp_path, capsys):
    assert main(["--device-info"]) == 0
    out = capsys.readouterr().out
    assert ("CPU facts" in out and "simd" in out) or "GPU facts" in out
    assert main(["--device-info", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] in ("cpu", "gpu")
    png = tmp_path / "r.png"
    assert main(["resnet18", "--input-shape", "3,32,32", "--min-time", "0.05", "--warmup", "1",
                 "--roofline", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main([]) == 2 and "--device-info" in capsys.readouterr().err


def test_batch_plot_from_the_command_line(tmp_path):
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "1,2", *FAST, "--batch-plot",
                 str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["resnet18", "--no-timing", "--batch-plot", str(tmp_path / "d.png")]) == 2
    assert not (tmp_path / "d.png").exists()


def test_csv_of_a_timed_profile_has_its_rows_and_depth_applies(tmp_path):
    out = tmp_path / "p.csv"
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "1,2", *FAST, "--depth", "1", "--format", "csv",
                 "--output", str(out)]) == 0
    layers, timing = out.read_text().split("\n\n")
    rows = list(csv.DictReader(io.StringIO(layers)))
    assert all(int(r["depth"]) <= 1 for r in rows) and rows[-1]["name"] == "(total)"
    timed = list(csv.DictReader(io.StringIO(timing)))
    assert [int(r["batch_size"]) for r in timed] == [1, 2] and all(float(r["p50_s"]) > 0 for r in timed)
    assert float(timed[0]["utilisation"]) < 1
    data = json.loads(_json(["resnet18", "--input-shape", "3,32,32", "--no-timing", "--depth", "1"]))
    assert {layer["depth"] for layer in data["layers"]} == {1}


def test_an_unreadable_sample_batch_and_a_read_only_folder_are_one_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "batch.pt"
    bad.write_bytes(b"not a torch file")
    assert main(["resnet18", "--compare-dtypes", "bf16", "--sample-batch", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"cannot read --sample-batch {bad}" in err and len(err.strip().splitlines()) == 1
    torch.save({"x": 1}, tmp_path / "dict.pt")
    assert main(["resnet18", "--compare-dtypes", "bf16", "--sample-batch", str(tmp_path / "dict.pt")]) == 2
    assert "holds a dict, not a tensor batch" in capsys.readouterr().err
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert main(["resnet18", "--device", "meta", "--output", str(tmp_path / "r.txt")]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "Permission denied" in err and len(err.strip().splitlines()) == 1


def test_memory_alone_and_one_optimizer_for_timing_and_memory(tmp_path):
    out = tmp_path / "m.json"
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "2", "--memory", "--no-timing", "--format", "json",
                 "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["memory"] is not None and data["memory"]["peak_bytes"] > data["params"] * 4  # weights + activations
    assert main(["resnet18", "--input-shape", "3,32,32", "--batch", "2", "--train", "--memory", "--optimizer", "adamw",
                 *FAST, "--format", "json", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["timing"]["settings"]["optimizer"] == "adamw"  # the timed step is the one whose memory is shown
    assert data["memory"]["by_category"]["optimizer_state"] >= 2 * data["params"] * 4  # Adam's two moments
    assert main(["resnet18", "--optimizer", "adamw", "--no-timing"]) == 2


def test_csv_carries_memory_and_generation_as_raw_numbers(tmp_path, capsys):
    assert main(["resnet18", "--input-shape", "3,32,32", "--memory", "--no-timing", "--format", "csv"]) == 0
    *_, memory, memory_layers = capsys.readouterr().out.split("\n\n")
    rows = {r["memory_category"]: int(r["bytes_at_peak"]) for r in csv.DictReader(io.StringIO(memory))}
    assert next(csv.DictReader(io.StringIO(memory_layers)))["name"] == "conv1"
    assert rows["parameters"] == 11689512 * 4 and rows["peak"] >= sum(v for k, v in rows.items() if k != "peak")
    assert main(["generation_models:gpt2_tiny", "--generate", "--prompt-len", "8", "--new-tokens", "3", *FAST,
                 "--format", "csv"]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert int(row["kv_cache_bytes"]) > 0 and float(row["decode_p50_s"]) > 0 and int(row["decode_steps"]) == 2


def test_trace_from_the_command_line(tmp_path, capsys):
    """--trace writes the per-layer pass as a Chrome trace: a span per module call per timed run."""
    path = tmp_path / "t.json"
    assert main(["resnet18", "--input-shape", "3,32,32", *FAST, "--trace", str(path), "--depth", "1"]) == 0
    assert f"wrote the per-layer trace (ui.perfetto.dev) to {path}" in capsys.readouterr().err
    trace = json.loads(path.read_text())
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X" and e.get("cat") == "layer"]
    runs = [e for e in trace["traceEvents"] if e["ph"] == "X" and e.get("cat") == "run"]
    model, calls = torchvision.models.resnet18(), []
    for module in model.modules():  # BasicBlock calls its relu twice: count the calls, not the modules
        module.register_forward_hook(lambda *a: calls.append(1))
    model.eval()(torch.randn(1, 3, 32, 32))
    calls = len(calls)
    assert runs and len(spans) == calls * len(runs)
    assert {e["args"]["layer"] for e in spans} >= {"conv1", "layer4.1.conv2", "fc"}
    assert main(["resnet18", "--no-timing", "--trace", str(tmp_path / "u.json")]) == 2  # counting has no pass
    assert not (tmp_path / "u.json").exists()
