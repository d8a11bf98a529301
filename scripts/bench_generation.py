"""Generation benchmark of tiny causal LMs on this machine: prefill p50, decode p50 per step,
tokens/s and KV cache bytes, for the table in docs/llm.md ("Generation").

The models are built offline with random weights (2 layers, width 64, vocabulary 128): a GPT-2
(multi-head attention) and a Llama (grouped-query: 4 heads, 2 KV heads). Greedy, a fixed number
of new tokens; the DynamicCache, and with --static also the StaticCache.

    .venv/bin/python scripts/bench_generation.py [--prompt-len 128] [--new-tokens 64] [--batch 1,8]
                                                 [--min-time 2] [--static] [--dtype fp32] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
import transformers
from tabulate import tabulate

import torchprof_lab

transformers.logging.set_verbosity_error()


def gpt2_tiny():
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=128, n_positions=1024)
    return transformers.GPT2LMHeadModel(config).eval()


def llama_tiny():
    config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=128, vocab_size=128,
                                      max_position_embeddings=1024)
    return transformers.LlamaForCausalLM(config).eval()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--batch", default="1,8")
    p.add_argument("--min-time", type=float, default=2.0)
    p.add_argument("--dtype", default=None)
    p.add_argument("--static", action="store_true", help="also time the StaticCache")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    args = p.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    caches = ["dynamic", "static"] if args.static else ["dynamic"]
    rows, notes = [], set()
    for name, build in (("gpt2-tiny", gpt2_tiny), ("llama-tiny", llama_tiny)):
        torch.manual_seed(0)
        model = build()
        for cache in caches:
            report = torchprof_lab.benchmark_generation(
                model, prompt_len=args.prompt_len, new_tokens=args.new_tokens, batch_sizes=batches, cache=cache,
                dtype=args.dtype, min_time=args.min_time, warmup_time=1.0, threads=args.threads, progress=False,
                name=name)
            for r in report.rows:
                rows.append([name, cache, r.batch_size, f"{r.prefill.p50 * 1e3:.2f}", f"{r.prefill.min * 1e3:.2f}",
                             f"{r.decode.p50 * 1e3:.3f}", f"{r.tokens_per_s:,.0f}", f"{r.kv_cache_bytes:,}",
                             f"{r.flops_per_token / 1e3:.0f} K",
                             "-" if r.mfu_prefill is None else f"{r.mfu_prefill:.1%}",
                             "-" if r.mbu_decode is None else f"{r.mbu_decode:.1%}",
                             f"{r.generations} x {r.decode_steps}"])
            notes.add(f"{report.environment['cpu']}, {report.environment['intra_op_threads']} threads, torch "
                      f"{report.environment['torch']}, transformers {transformers.__version__}, {report.dtype}, "
                      f"clock {report.timer}")
            if report.ceiling is not None:
                notes.add(f"ceiling: {report.ceiling.source}")
    headers = ["model", "cache", "batch", "prefill p50 ms", "prefill min ms", "decode p50 ms/step", "tokens/s",
               "KV cache bytes", "FLOPs/token", "MFU prefill", "MBU decode", "runs x steps"]
    print(f"prompt {args.prompt_len} + {args.new_tokens} new tokens, greedy\n")
    print(tabulate(rows, headers=headers, tablefmt="github", colalign=("left", "left") + ("right",) * 10))
    print()
    for note in sorted(notes):
        print(f"- {note}")


if __name__ == "__main__":
    main()
