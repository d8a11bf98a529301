"""Token models (issue 12): transformers models built offline from tiny configs, per-token
figures, PaLM's and Megatron's formulas, and the CLI's hf: specs. No network, ever."""

import json

import pytest
import torch

import torchprof_lab
from torchprof_lab.cli import main
from torchprof_lab.errors import DataDependentError, ModelBuildError
from torchprof_lab.llm import (megatron_flops_per_iteration, palm_flops_per_token, profile_tokens, token_inputs,
                               transformer_shape)
from torchprof_lab.models import build_model

transformers = pytest.importorskip("transformers")

FAST = ["--min-time", "0.02", "--warmup", "1", "--warmup-time", "0"]
GPT2 = {"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 1000, "n_positions": 64}
LLAMA_GQA = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "vocab_size": 100}
BERT = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
        "vocab_size": 1000}
T5 = {"num_layers": 2, "d_model": 64, "num_heads": 2, "d_kv": 32, "d_ff": 128, "vocab_size": 100}


def test_gqa_attention_macs_match_the_hand_formula():
    built = build_model("hf:llama", config=LLAMA_GQA)
    cfg = built.config
    L, h, H, KV, I, V = 2, 64, 4, 2, 128, 100
    Q, B, T = h // H, 2, 16
    assert cfg.num_key_value_heads < cfg.num_attention_heads and "causal LM head" in built.notes[0]
    r = torchprof_lab.count(built.model, inputs=token_inputs(V, T, extra={"use_cache": False}), batch_size=B)
    attention = (B * T * h * H * Q          # q_proj
                 + 2 * B * T * h * KV * Q   # k_proj, v_proj: only KV heads (the point of GQA)
                 + 2 * B * H * T * T * Q    # scores and values: every query head, K/V shared per group
                 + B * T * H * Q * h)       # o_proj
    mlp = 3 * B * T * h * I                 # gate, up, down
    assert r.layer("model.layers.0.self_attn").macs == attention
    assert r.macs == L * (attention + mlp) + B * T * h * V  # + lm_head; RMSNorm, RoPE, SiLU: no MACs
    assert r.params_without_embeddings == r.params - V * h  # lm_head is not tied in Llama: it stays in N


def test_gpt2_training_flops_against_megatron():
    built = build_model("hf:gpt2", config={**GPT2, "n_embd": 128})
    B, s, l, h, V = 2, 32, 2, 128, 1000
    r = torchprof_lab.count(built.model, inputs=token_inputs(V, s, extra={"use_cache": False}), batch_size=B,
                            backward=True)
    megatron = megatron_flops_per_iteration(B, s, l, h, V)
    # the formula counts the matmuls only (forward + twice that backward): our MACs are exactly those
    assert 2 * r.total_macs == pytest.approx(megatron, rel=1e-9)
    # the FLOPs add what the formula leaves out: layer norms, softmax, GELU, biases, residual adds,
    # the embedding's backward; at this small width (h = 128) they come to about 1.4%
    assert 1.0 < r.total_flops / megatron < 1.03
    assert r.train_flops_per_token is None  # count() alone does not know the sequence length


def test_the_formulas_by_hand():
    # Megatron: 72 B s l h^2 (1 + s/6h + V/12lh) == 6 x (per-layer 12 B s h^2 + 2 B s^2 h, + B s h V)
    B, s, l, h, V = 3, 10, 4, 24, 77
    assert megatron_flops_per_iteration(B, s, l, h, V) == pytest.approx(
        6 * (l * (12 * B * s * h * h + 2 * B * s * s * h) + B * s * h * V))
    # PaLM: 6N + 12 L H Q T, from numbers or from a config
    assert palm_flops_per_token({"layers": 2, "heads": 4, "head_dim": 16, "params": 1000}, 32) == \
        6 * 1000 + 12 * 2 * 4 * 16 * 32
    cfg = transformers.AutoConfig.for_model("llama", **LLAMA_GQA)
    assert transformer_shape(cfg).to_dict() == {"layers": 2, "heads": 4, "head_dim": 16, "hidden": 64,
                                                 "vocab": 100, "kv_heads": 2}
    assert palm_flops_per_token(cfg, 8, 500, train=False) == (6 * 500 + 12 * 2 * 4 * 16 * 8) / 3
    t5 = transformers.AutoConfig.for_model("t5", **T5)
    assert transformer_shape(t5).layers == 4 and transformer_shape(t5).head_dim == 32  # encoder + decoder


def test_meta_count_of_bert_with_a_mask_says_which_check_stopped_it():
    built = build_model("hf:bert", config=BERT)
    ids = token_inputs(1000, 16)(2)
    with pytest.raises(DataDependentError) as caught:
        torchprof_lab.count(built.model, inputs=ids, device="meta")
    text = str(caught.value)
    assert "\n" not in text and "padding_mask.all()" in text and "meta tensors have no values" in text
    assert "count on the CPU" in text and "BertModel" in text
    # without the mask (an all-ones mask is skipped the same way) meta counts what the CPU counts
    on_cpu = torchprof_lab.count(built.model, inputs=ids)
    on_meta = torchprof_lab.count(built.model, inputs={"input_ids": ids["input_ids"]}, device="meta")
    # on meta SDPA would take its math path (matmul, scale, softmax, matmul); a meta count follows the
    # CPU's flash kernel, as the CPU run does (docs/counting.md), and says so
    assert (on_meta.macs, on_meta.flops) == (on_cpu.macs, on_cpu.flops)
    assert "scaled_dot_product_attention (2 calls) counted on meta as the CPU's flash kernel, which a CPU run " \
           "takes" in on_meta.notes


def test_t5_gets_decoder_inputs_and_per_token_figures():
    built = build_model("hf:t5", config=T5)
    assert "encoder-decoder" in built.notes[0]
    r = profile_tokens(built.model, [8], [2], config=built.config, timing=False, backward=True)
    assert r.inputs.count("(2, 8) int64") == 3  # input_ids, attention_mask, decoder_input_ids
    assert r.flops_per_token == r.flops / 16 and r.train_flops_per_token == r.total_flops / 16
    assert r.model_flops_per_token == palm_flops_per_token(built.config, 8, r.params_without_embeddings)
    # the shared token table, and the relative position bias tables (32 buckets x 2 heads, encoder and decoder)
    assert r.embedding_params == 100 * 64 + 2 * 32 * 2
    assert r.to_dict()["params_without_embeddings"] == r.params - 6528


def test_cli_counts_hf_gpt2_without_a_download(capsys):
    assert main(["hf:gpt2", "--config", "n_layer=2", "n_embd=64", "n_head=2", "--seq-len", "16",
                 "--no-timing"]) == 0
    out = capsys.readouterr().out
    assert "GPT2LMHeadModel (decoder: causal LM head)" in out and "n_layer=2" in out
    assert "Params without embeddings: 100,096" in out  # wte and wpe (and the lm_head tied to wte) left out
    assert "Per token (16 tokens per sample): forward" in out and "PaLM model FLOPs" in out


def test_cli_sweeps_batch_and_sequence_length_together(capsys):
    args = ["hf:gpt2", "--config", *(f"{k}={v}" for k, v in GPT2.items()), "--seq-len", "8,16", "--batch", "1,2",
            "--format", "json", *FAST]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["timing"]["rows"]
    assert [(r["batch_size"], r["tokens_per_sample"]) for r in rows] == [(1, 8), (2, 8), (1, 16), (2, 16)]
    for r in rows:
        assert r["tokens_per_s"] == pytest.approx(r["samples_per_s"] * r["tokens_per_sample"])
        assert r["model_flops_utilisation"] is None or r["model_flops_utilisation"] > 0
    assert data["tokens_per_sample"] == 8 and data["flops_per_token"] > 0


@pytest.mark.parametrize("args,needle", [
    (["hf:openai-community/gpt2", "--no-timing"], "pass hf:<that directory>"),
    (["hf:gpt2", "--config", "n_layers=2", "--no-timing"], "did you mean n_layer?"),
    (["hf:gpt3", "--no-timing"], "did you mean hf:"),
    (["hf:gpt2", "--config", "n_layer=1", "--seq-len", "8,16", "--no-timing"], "takes one sequence length"),
    (["resnet18", "--seq-len", "8", "--no-timing"], "add --input-dtype long"),
    (["llm_models:tiny_lm", "--input-dtype", "long", "--seq-len", "8", "--no-timing"], "needs --vocab"),
    (["resnet18", "--config", "a=1", "--no-timing"], "config overrides apply to transformers models"),
])
def test_cli_token_errors_are_one_line(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_cli_meta_count_of_bert_leaves_the_mask_out(capsys):
    assert main(["hf:bert", "--config", *(f"{k}={v}" for k, v in BERT.items()), "--seq-len", "16",
                 "--device", "meta", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"] == "(1, 16) int64" and any("attention mask is left out" in n for n in data["notes"])


def test_a_local_directory_loads_config_and_weights(tmp_path):
    built = build_model("hf:gpt2", config=GPT2)
    built.model.save_pretrained(tmp_path)
    again = build_model(f"hf:{tmp_path}", config={"n_layer": 2})
    assert "weights loaded" in again.notes[0]
    assert torch.equal(again.model.lm_head.weight, built.model.lm_head.weight)
    (tmp_path / "model.safetensors").unlink()
    assert "random initialisation" in build_model(f"hf:{tmp_path}").notes[0]


def test_without_transformers_one_line_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelBuildError, match=r"pip install 'torchprof_lab\[hf\]'"):
        build_model("hf:gpt2")



def test_cli_meta_count_of_a_causal_lm_matches_the_cpu(capsys):
    from transformers import masking_utils

    check = masking_utils.find_packed_sequence_indices
    config = ["--config", "n_layer=2", "n_embd=64", "n_head=2", "--seq-len", "16", "--format", "json"]
    assert main(["hf:gpt2", *config, "--device", "meta"]) == 0  # transformers' packed-sequence check answered on meta
    meta = json.loads(capsys.readouterr().out)
    assert main(["hf:gpt2", *config, "--no-timing"]) == 0
    cpu = json.loads(capsys.readouterr().out)
    assert (meta["macs"], meta["flops"]) == (cpu["macs"], cpu["flops"]) and not any("KV cache" in n for n in meta["notes"])
    assert masking_utils.find_packed_sequence_indices is check  # transformers' own function again
    # a forward to profile builds no KV cache: the bytes are those of the forward with use_cache=False
    built = build_model("hf:gpt2", config={"n_layer": 2, "n_embd": 64, "n_head": 2})
    plain = torchprof_lab.count(built.model, inputs=token_inputs(built.config.vocab_size, 16,
                                                                 extra={"use_cache": False}), batch_size=1)
    assert cpu["bytes"] == plain.bytes and cpu["flops"] == plain.flops


def test_generate_with_a_model_without_a_head_is_one_line(capsys):
    assert main(["hf:bert", "--config", *(f"{k}={v}" for k, v in BERT.items()), "--generate", "--prompt-len", "8",
                 "--new-tokens", "3", "--min-time", "0.01", "--warmup", "0", "--warmup-time", "0"]) == 2
    err = capsys.readouterr().err
    assert "BertModel returns no logits" in err and len(err.strip().splitlines()) == 1


def test_cli_memory_and_fit_of_a_token_model(capsys):
    """--memory and --fit take token models: the ids without a mask, on meta for --fit (a CUDA target)."""
    config = ["--config", "n_layer=2", "n_embd=64", "n_head=2", "--seq-len", "16", "--batch", "2"]
    step = ["--train", "--optimizer", "adamw", "--memory", "--format", "json"]
    assert main(["hf:gpt2", *config, "--no-timing", *step]) == 0
    cpu = json.loads(capsys.readouterr().out)
    assert main(["hf:gpt2", *config, "--no-timing", *step, "--fit", "1GiB"]) == 0
    fit = json.loads(capsys.readouterr().out)
    params = build_model("hf:gpt2", config={"n_layer": 2, "n_embd": 64, "n_head": 2}).model
    param_bytes = sum(p.numel() * 4 for p in params.parameters())
    assert cpu["memory"]["device"] == "cpu" and cpu["memory"]["inputs"] == "(2, 16) int64"
    assert cpu["memory"]["by_category"]["parameters"] == param_bytes
    assert cpu["memory"]["by_category"]["optimizer_state"] == 2 * param_bytes + 4 * len(list(params.parameters()))
    assert fit["memory"]["device"] == "meta" and fit["memory"]["target"] == "cuda"
    largest = fit["memory"]["fit"]["largest_batch"]
    assert fit["memory"]["fit"]["bytes"] == 2**30 and largest > 2
    assert any("without an attention mask" in n for n in fit["notes"])
