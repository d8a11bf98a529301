"""Our counts of two language models beside the analytic formulas and beside other counters.

GPT-2 small (``transformers.GPT2Config()`` defaults: 12 layers, width 768, vocabulary 50257) and
a Llama-style model scaled to run on a CPU in seconds (8 layers, hidden 1024, 16 heads sharing
4 KV heads, SwiGLU 2816, vocabulary 32000), random weights, nothing downloaded, batch 1, eval
mode, ``use_cache=False``, the default (SDPA) attention. For each sequence length:

- ours: ``torchprof_lab.count`` on the CPU: forward MACs/FLOPs (eval mode), and the training
  step (forward + backward, train mode);
- the formulas in ``torchprof_lab.llm``: Megatron's ``72 B s l h^2 (1 + s/6h + V/12lh)`` (GPT-2
  only: it assumes a 4h MLP and full multi-head attention) and PaLM's ``(6N + 12 L H Q T) x tokens``;
- other counters run side by side on the same model and ids: fvcore (``FlopCountAnalysis``,
  which reports one "flop" per MAC), calflops, ptflops (its ``pytorch`` and ``aten`` backends)
  and thop. They are not dependencies of the package; install them into the venv for this
  script only: ``.venv/bin/pip install calflops ptflops thop``. A counter that is missing or
  raises is recorded with its one-line reason instead of a number.

    .venv/bin/python scripts/bench_llm_counters.py [--seq-lens 128,1024] [--models gpt2-small,llama-8x1024]
        [--quick] [--json FILE]

``--quick`` uses 2-layer, width-64 versions of both (a check of the script, not a measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import version

import torch
from tabulate import tabulate
from torch import nn

import torchprof_lab
from torchprof_lab.llm import megatron_flops_per_iteration, palm_flops_per_token, token_inputs, transformer_shape
from torchprof_lab.models import build_model

MODELS = {
    "gpt2-small": ("hf:gpt2", {}),
    "llama-8x1024": ("hf:llama", {"num_hidden_layers": 8, "hidden_size": 1024, "num_attention_heads": 16,
                                  "num_key_value_heads": 4, "intermediate_size": 2816, "vocab_size": 32000}),
}
QUICK = {
    "gpt2-small": ("hf:gpt2", {"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 1000}),
    "llama-8x1024": ("hf:llama", {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                                  "num_key_value_heads": 2, "intermediate_size": 176, "vocab_size": 1000}),
}
COUNTERS = ["fvcore", "calflops", "ptflops-pytorch", "ptflops-aten", "thop"]


class Logits(nn.Module):
    """The model as a function of the ids alone (thop and fvcore take positional inputs only)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


def reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}".rstrip(": ")


@contextlib.contextmanager
def torch_restored():
    """calflops and ptflops patch torch.*, torch.Tensor.* and torch.nn.functional.* for their run and
    undo it at the end, but not when the model raises half-way: put every attribute back, so one
    counter's failure does not break the next (ptflops then fails with a KeyError on calflops' wrapper)."""
    spaces = [torch, torch.Tensor, torch.nn.functional]
    saved = [dict(vars(space)) for space in spaces]
    try:
        yield
    finally:
        for space, before in zip(spaces, saved):
            for name, value in before.items():
                if vars(space).get(name) is not value:
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(space, name, value)


@contextlib.contextmanager
def quiet():
    """The counters print tables and warnings of their own; keep the script's output readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def fvcore_count(model, ids) -> tuple[int, str]:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(Logits(model), (ids,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = analysis.total()  # fvcore's "flops" are MACs (one per multiply-add)
    by_op = analysis.by_operator()
    skipped = analysis.unsupported_ops()
    matmuls = sum(v for k, v in by_op.items() if k in ("linear", "matmul", "addmm", "bmm", "einsum", "mm"))
    attention = {k: v for k, v in skipped.items() if "attention" in k}
    note = (f"by op: {', '.join(f'{k} {v:,}' for k, v in sorted(by_op.items()))}; matmul part {matmuls:,}; "
            f"skipped: {', '.join(f'{k} x{v}' for k, v in sorted(skipped.items()))}")
    if attention:
        note += f" (attention skipped: {', '.join(attention)})"
    return int(total), note


def calflops_count(model, ids) -> tuple[int, str]:
    from calflops import calculate_flops

    # calflops moves every keyword argument with .to(device): use_cache=False cannot be passed as one
    flops, macs, _ = calculate_flops(model=Logits(model), args=[ids], print_results=False, print_detailed=False,
                                     output_as_string=False)
    return int(macs), f"its FLOPs {int(flops):,}"


def ptflops_count(model, ids, backend: str) -> tuple[int, str]:
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, tuple(ids.shape), as_strings=False, print_per_layer_stat=False,
                                        input_constructor=lambda _: {"input_ids": ids, "use_cache": False},
                                        backend=backend)
    if macs is None:
        raise RuntimeError("returned None (it caught an error of the forward and printed it)")
    return int(macs), ""


def thop_count(model, ids) -> tuple[int, str]:
    import thop

    macs, _ = thop.profile(Logits(model), inputs=(ids,), verbose=False)
    return int(macs), ""


RUN = {"fvcore": fvcore_count, "calflops": calflops_count, "thop": thop_count,
       "ptflops-pytorch": lambda m, i: ptflops_count(m, i, "pytorch"),
       "ptflops-aten": lambda m, i: ptflops_count(m, i, "aten")}


def measure(name: str, spec: str, overrides: dict, seq: int) -> dict:
    built = build_model(spec, config=overrides)
    model, cfg = built.model.eval(), built.config
    shape = transformer_shape(cfg)
    vocab = cfg.vocab_size
    ids = token_inputs(vocab, seq, plain=True)(1)
    started = time.perf_counter()
    fwd = torchprof_lab.count(model, inputs={"input_ids": ids, "use_cache": False}, batch_size=1)
    ours_s = time.perf_counter() - started
    train = torchprof_lab.count(model, inputs={"input_ids": ids, "use_cache": False}, batch_size=1,
                                backward=True)
    tokens = seq  # batch 1
    n = fwd.params_without_embeddings
    row = {"model": name, "seq": seq, "layers": shape.layers, "hidden": shape.hidden, "heads": shape.heads,
           "kv_heads": shape.kv_heads, "vocab": vocab, "params": fwd.params, "params_without_embeddings": n,
           "ours_macs": fwd.macs, "ours_flops": fwd.flops, "ours_seconds": round(ours_s, 2),
           "ours_train_macs": train.total_macs, "ours_train_flops": train.total_flops,
           "ours_uncounted": dict(fwd.uncounted_ops),
           "palm_train_flops": palm_flops_per_token(cfg, seq, n) * tokens,
           "palm_forward_macs": palm_flops_per_token(cfg, seq, n, train=False) * tokens / 2,
           "megatron_train_flops": None, "counters": {}}
    if spec == "hf:gpt2":  # a 4h MLP and full multi-head attention: Megatron's formula applies
        row["megatron_train_flops"] = megatron_flops_per_iteration(1, seq, shape.layers, shape.hidden, vocab)
    for counter in COUNTERS:
        started = time.perf_counter()
        try:
            with quiet(), torch_restored():
                macs, note = RUN[counter](model, ids)
            result = {"macs": macs, "ratio": macs / fwd.macs, "note": note}
        except Exception as error:  # recorded as the result: this is what a user of that counter gets
            result = {"macs": None, "ratio": None, "note": reason(error)}
        result["seconds"] = round(time.perf_counter() - started, 2)
        row["counters"][counter] = result
        print(f"  {name} seq {seq} {counter}: {result['macs']} ({result['seconds']} s) {result['note'][:200]}",
              file=sys.stderr, flush=True)
    return row


def g(value) -> str:
    return "-" if value is None else f"{value / 1e9:,.2f} G"


def ratio(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def tables(rows: list[dict]) -> str:
    formulas = [[r["model"], r["seq"], g(r["ours_macs"]), g(r["ours_flops"]), g(r["palm_forward_macs"]),
                 ratio(r["palm_forward_macs"] / r["ours_macs"]), g(r["ours_train_flops"]),
                 g(r["megatron_train_flops"]),
                 ratio(r["megatron_train_flops"] / r["ours_train_flops"]) if r["megatron_train_flops"] else "-",
                 ratio(2 * r["ours_train_macs"] / r["megatron_train_flops"]) if r["megatron_train_flops"] else "-",
                 g(r["palm_train_flops"]), ratio(r["palm_train_flops"] / r["ours_train_flops"])]
                for r in rows]
    first = tabulate(formulas, headers=["model", "seq", "ours fwd MACs", "ours fwd FLOPs", "PaLM fwd MACs",
                                        "PaLM/ours", "ours train FLOPs", "Megatron train FLOPs",
                                        "Megatron/ours", "2 x our train MACs / Megatron", "PaLM train FLOPs",
                                        "PaLM/ours"],
                     tablefmt="github", disable_numparse=True)
    counters = []
    for r in rows:
        line = [r["model"], r["seq"], g(r["ours_macs"])]
        for c in COUNTERS:
            res = r["counters"][c]
            line.append("failed" if res["macs"] is None else f"{g(res['macs'])} ({ratio(res['ratio'])})")
        counters.append(line)
    second = tabulate(counters, headers=["model", "seq", "ours MACs", *(f"{c} (x ours)" for c in COUNTERS)],
                      tablefmt="github", disable_numparse=True)
    failures = sorted({(c, r["counters"][c]["note"]) for r in rows for c in COUNTERS
                       if r["counters"][c]["macs"] is None})
    third = "\n".join(f"- {c}: {note}" for c, note in failures)
    return "\n\n".join(x for x in (first, second, third) if x)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", default="128,1024")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--quick", action="store_true", help="2-layer width-64 models: checks the script")
    parser.add_argument("--json", help="also write the rows (with each counter's notes) to this file")
    args = parser.parse_args(argv)
    table = QUICK if args.quick else MODELS
    seqs = [int(s) for s in args.seq_lens.split(",")]
    names = args.models.split(",")
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    for package in ("fvcore", "calflops", "ptflops", "thop"):
        try:
            versions[package] = version(package)
        except Exception:
            versions[package] = "not installed"
    rows = [measure(name, *table[name], seq) for name in names for seq in seqs]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(tables(rows))
    print()
    for r in rows:
        for c in COUNTERS:
            if r["counters"][c]["macs"] is not None and r["counters"][c]["note"]:
                print(f"{r['model']} seq {r['seq']} {c}: {r['counters'][c]['note']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"versions": versions, "rows": rows}, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
