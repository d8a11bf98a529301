"""benchmark_generation on tiny transformers models built offline: the KV cache bytes exact,
new_tokens - 1 decode steps timed per generation, tokens/s = batch / decode p50, the tokens
those of greedy model.generate(), and the model (and its cache settings) left as it was."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

import generation_models  # noqa: E402  (tests/ is on sys.path: conftest.py)
from model_fingerprint import assert_untouched, fingerprint  # noqa: E402

from torchprof_lab import benchmark_generation  # noqa: E402
from torchprof_lab.cli import main  # noqa: E402
from torchprof_lab.report.render import render  # noqa: E402

# one thread: on a busy shared machine two threads wait for each other's descheduled one (steps ~100x slower)
FAST = dict(min_time=0.01, min_runs=2, warmup=1, warmup_time=0.0, threads=1, hardware=False)
PROMPT, NEW = 12, 6

# (builder, layers, kv heads, head dim): GPT-2 is multi-head, the Llama grouped-query (4 heads, 2 KV heads)
MODELS = {"gpt2": (generation_models.gpt2_tiny, 2, 2, 32), "llama": (generation_models.llama_tiny, 2, 2, 16)}


def kv_bytes(name, batch, element=4):
    _, layers, kv_heads, head_dim = MODELS[name]
    return 2 * layers * batch * kv_heads * (PROMPT + NEW - 1) * head_dim * element


def greedy_reference(model, batch):
    ids = torch.randint(0, 128, (batch, PROMPT), generator=torch.Generator().manual_seed(batch))  # the run's prompt
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW,
                         min_new_tokens=NEW, pad_token_id=0)
    return [list(map(int, row)) for row in out[:, PROMPT:]]


@pytest.mark.parametrize("name,cache", [("gpt2", "dynamic"), ("llama", "dynamic"), ("llama", "static")])
def test_cache_steps_tokens_and_model_untouched(name, cache):
    model = MODELS[name][0]()
    model.config.use_cache = False  # the user's setting: the run uses a cache anyway, and leaves this as it was
    generation_config = model.generation_config.to_dict()
    before = fingerprint(model)
    report = benchmark_generation(model, prompt_len=PROMPT, new_tokens=NEW, batch_sizes=[1, 3], cache=cache, **FAST)
    assert_untouched(before, model)
    assert model.config.use_cache is False and model.generation_config.to_dict() == generation_config
    for row in report.rows:
        assert row.kv_cache_bytes == kv_bytes(name, row.batch_size)
        assert row.kv_cache_positions == PROMPT + NEW - 1  # the last token is never fed back
        assert row.decode_steps == NEW - 1  # the prefill makes the first token
        assert row.prefill.n == row.generations >= 2 and row.decode.n == row.generations * (NEW - 1)
        assert row.tokens_per_s == row.batch_size / row.decode.p50
        assert row.prefill_flops > row.decode_flops > 0
        assert row.flops_per_token == row.decode_flops / row.batch_size
        assert len(row.output_ids) == row.batch_size and all(len(s) == NEW for s in row.output_ids)
        assert [list(s) for s in row.output_ids] == greedy_reference(model, row.batch_size)
    assert report.cache == cache and report.dtype == "fp32"


def test_bf16_copy_mfu_mbu_and_renderings():
    model = generation_models.llama_tiny()
    before = fingerprint(model)
    report = benchmark_generation(model, prompt_len=PROMPT, new_tokens=NEW, batch_sizes=[2], dtype="bf16",
                                  **{**FAST, "hardware": True})
    assert_untouched(before, model)
    row = report.rows[0]
    assert report.dtype == "bf16" and row.kv_cache_bytes == kv_bytes("llama", 2, element=2)
    params = sum(p.numel() for p in model.parameters())
    assert row.weight_bytes == params * 2
    per_position = row.kv_cache_bytes / (PROMPT + NEW - 1)
    assert row.decode_bytes == pytest.approx(row.weight_bytes + per_position * (PROMPT + NEW / 2))
    ceiling = report.ceiling
    assert row.mbu_decode == pytest.approx(row.decode_bytes / row.decode.p50 / ceiling.peak_bandwidth)
    if ceiling.peak_flops:
        assert row.mfu_prefill == pytest.approx(row.prefill_flops / row.prefill.p50 / ceiling.peak_flops)
    assert any("measured copy" in n for n in report.notes)
    markdown = render(report, "markdown")
    assert "Decode p50 ms/step" in str(report) and markdown.startswith("### Generation") and "Tokens/s |" in markdown
    header, first = render(report, "csv").splitlines()[:2]
    assert header.startswith("batch_size,prefill_p50_s") and int(first.split(",")[4]) == row.kv_cache_bytes
    data = json.loads(report.to_json())
    assert data["rows"][0]["kv_cache_bytes"] == row.kv_cache_bytes and data["rows"][0]["decode_steps"] == NEW - 1


def test_given_prompt_and_argument_checks():
    model = generation_models.gpt2_tiny()
    prompt = torch.arange(PROMPT) % 128
    report = benchmark_generation(model, prompt_len=PROMPT, new_tokens=NEW, batch_sizes=[2], prompt=prompt, **FAST)
    assert report.rows[0].output_ids[0] == report.rows[0].output_ids[1]  # the same prompt twice
    for bad in (dict(new_tokens=1), dict(cache="paged"), dict(batch_sizes=[]), dict(prompt_len=0),
                dict(prompt=torch.zeros(3, PROMPT, dtype=torch.long)), dict(train=True)):
        with pytest.raises(ValueError):
            benchmark_generation(model, **{"prompt_len": PROMPT, "new_tokens": NEW, **FAST, **bad})
    with pytest.raises(ValueError, match="config"):
        benchmark_generation(torch.nn.Linear(2, 2))


def test_cli_generate(capsys):
    fast = ["--min-time", "0.01", "--warmup", "1", "--warmup-time", "0", "--threads", "1"]
    assert main(["generation_models:llama_tiny", "--generate", "--prompt-len", str(PROMPT), "--new-tokens", str(NEW),
                 "--batch", "1,2", "--format", "json", *fast]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["batch_size"] for r in data["rows"]] == [1, 2] and data["prompt_len"] == PROMPT
    assert data["rows"][1]["kv_cache_bytes"] == kv_bytes("llama", 2)
    assert main(["generation_models:gpt2_tiny", "--prompt-len", "8"]) == 2  # not a profile's flag
    assert "does not apply" in capsys.readouterr().err
    assert main(["generation_models:gpt2_tiny", "--generate", "--backward"]) == 2


def test_cli_generate_an_hf_spec(capsys):
    config = ["--config", "n_layer=2", "n_embd=64", "n_head=2", "vocab_size=128"]
    assert main(["hf:gpt2", *config, "--generate", "--prompt-len", "8", "--new-tokens", "3", "--batch", "2",
                 "--format", "json", "--min-time", "0.01", "--warmup", "1", "--warmup-time", "0", "--threads", "1"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["kv_cache_bytes"] == 2 * 2 * 2 * 2 * (8 + 3 - 1) * 32 * 4 and row["decode_steps"] == 2
