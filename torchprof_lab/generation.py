"""benchmark_generation(): prefill and per-step decode latency of a causal language model.

The model's own key/value cache (a transformers ``DynamicCache`` or ``StaticCache``) is
driven in a hand loop: one timed prefill over the prompt makes the first new token, then
``new_tokens - 1`` timed decode steps each feed the last token back (the last token made is
never fed back, so the cache ends at ``prompt_len + new_tokens - 1`` positions). Decoding is
greedy (argmax) for a fixed number of tokens, with end-of-sequence suppressed as
``generate(min_new_tokens=new_tokens)`` does, so the tokens equal ``model.generate(...,
do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)``.

The whole generation is the unit of ``timing.loop.sample`` (warm-up first, then until
TimingOptions' min_runs and min_time are met); inside it the prefill and every decode step
are timed apart with the same clock (CUDA events on a GPU, the monotonic clock on a CPU).
The user's model and its settings (``config.use_cache``, ``generation_config``) are left
as they were: nothing is written to the config, the run happens inside
``model_state.model_restored`` (through ``timing.prepare.prepared_model``), under the
model's lock, with torch's RNG restored and under ``torch.inference_mode()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .api import count
from .hardware.ceiling import ceiling_for
from .model_state import model_lock, rng_restored
from .report import render
from .timing.benchmark import environment
from .timing.loop import clock_for, sample
from .timing.options import TimingOptions
from .timing.prepare import backend_settings, plan, prepared_model, timed_device
from .timing.stats import LatencyStats
from .values import Value

CACHES = ("dynamic", "static")


@dataclass(frozen=True)
class GenerationRow:
    """One batch size: prefill (time to first token) and decode-step latency, the cache the
    model built, and the counted work against the device's ceilings."""

    batch_size: int
    prefill: LatencyStats  # seconds of the prefill: the prompt in, the first new token out
    decode: LatencyStats  # seconds per decode step (one new token per sequence), every step of every run
    generation: LatencyStats  # seconds of one whole generation (prefill + decode steps)
    generations: int  # timed generations (after the warm-up)
    decode_steps: int  # timed decode steps per generation: new_tokens - 1 (prefill makes the first token)
    kv_cache_bytes: int  # K and V of every layer, as the model's cache holds them at the end
    kv_cache_positions: int  # positions the cache holds at the end: prompt_len + new_tokens - 1
    weight_bytes: int  # parameters (each once, tied weights too)
    decode_bytes: float  # mean bytes a decode step must read: weights + the KV cache so far
    prefill_flops: int | None = None  # counted forward FLOPs of the prefill (whole batch)
    decode_flops: int | None = None  # counted forward FLOPs of the first decode step (whole batch)
    mfu_prefill: float | None = None  # prefill FLOP/s over the device's peak FLOP/s
    mbu_decode: float | None = None  # decode bytes/s over the device's peak bandwidth
    output_ids: tuple[tuple[int, ...], ...] = field(default=(), repr=False)  # the new tokens, per sequence

    @property
    def tokens_per_s(self) -> float:
        """New tokens per second while decoding: batch / decode p50."""
        return self.batch_size / self.decode.p50

    @property
    def flops_per_token(self) -> float | None:
        """Counted forward FLOPs of one decode step per sequence (decode FLOPs / batch)."""
        return None if self.decode_flops is None else self.decode_flops / self.batch_size

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "prefill_s": self.prefill.to_dict(), "decode_s": self.decode.to_dict(),
                "generation_s": self.generation.to_dict(with_samples=False), "generations": self.generations,
                "decode_steps": self.decode_steps, "tokens_per_s": self.tokens_per_s,
                "kv_cache_bytes": self.kv_cache_bytes, "kv_cache_positions": self.kv_cache_positions,
                "weight_bytes": self.weight_bytes, "decode_bytes": self.decode_bytes,
                "prefill_flops": self.prefill_flops, "decode_flops": self.decode_flops,
                "flops_per_token": self.flops_per_token, "mfu_prefill": self.mfu_prefill,
                "mbu_decode": self.mbu_decode, "output_ids": [list(s) for s in self.output_ids]}


@dataclass(frozen=True)
class GenerationReport(render.Rendered, Value):
    """Generation timing of one model across batch sizes, with the run's settings."""

    model: str
    device: str
    dtype: str
    prompt_len: int
    new_tokens: int
    cache: str  # "dynamic" or "static"
    compiled: bool
    timer: str  # the clock's name
    settings: dict
    environment: dict
    rows: tuple[GenerationRow, ...]
    ceiling: object = None  # hardware.ceiling.Ceiling, or None (hardware=False, or not known)
    notes: tuple[str, ...] = ()

    def row(self, batch_size: int) -> GenerationRow:
        for r in self.rows:
            if r.batch_size == batch_size:
                return r
        raise KeyError(f"no row for batch size {batch_size}")

    def to_dict(self) -> dict:
        return {"model": self.model, "device": self.device, "dtype": self.dtype, "prompt_len": self.prompt_len,
                "new_tokens": self.new_tokens, "cache": self.cache, "compiled": self.compiled, "clock": self.timer,
                "settings": self.settings, "environment": self.environment,
                "rows": [r.to_dict() for r in self.rows],
                "ceiling": self.ceiling.to_dict() if self.ceiling is not None else None, "notes": list(self.notes)}


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _batch_sizes(batch_sizes) -> list[int]:
    if isinstance(batch_sizes, (int, str)) or not isinstance(batch_sizes, Sequence) or not batch_sizes:
        raise ValueError(f"batch_sizes must be a non-empty list of positive integers such as [1, 8], "
                         f"got {batch_sizes!r}")
    return [_positive_int("a batch size", b) for b in batch_sizes]


def benchmark_generation(model: nn.Module, prompt_len: int = 128, new_tokens: int = 64,
                         batch_sizes: Sequence[int] = (1,), *, device=None, dtype=None, cache: str = "dynamic",
                         compile: bool = False, prompt=None, hardware: bool = True, name: str | None = None,
                         options: TimingOptions | None = None, **settings) -> GenerationReport:
    """Time greedy generation of ``new_tokens`` tokens after a ``prompt_len`` prompt, per batch size.

    ``model`` is a transformers causal LM (anything taking ``input_ids`` and the model's cache,
    returning ``logits``). ``prompt`` (token ids, ``(batch, len)`` or ``(len,)``, or a callable
    of the batch size) replaces the random prompt (fixed seed, not the global RNG). ``dtype``
    ('fp16', 'bf16', ...) times a cast copy, ``compile`` a ``torch.compile`` of it, ``cache``
    'static' a StaticCache of ``prompt_len + new_tokens - 1`` positions instead of the
    DynamicCache. ``options`` (a TimingOptions) or its fields as keywords (warmup,
    warmup_time, min_time, min_runs, max_time, threads) say how long to time: whole
    generations are repeated until min_runs and min_time are met, after the warm-up.
    ``hardware`` compares with the device's ceilings: MFU of the prefill (counted FLOPs over
    peak FLOP/s) and MBU of the decode (weights + KV cache read per step over peak bandwidth;
    on a CPU the bandwidth is the measured copy, not a datasheet figure).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if getattr(model, "config", None) is None:
        raise ValueError("model has no .config: benchmark_generation takes a transformers causal LM")
    given = {"dtype": dtype} if dtype is not None else {}
    if compile:
        given["compile"] = True
    options = TimingOptions.of(options, **given, **settings)
    if options.train:
        raise ValueError("generation is inference: train=True does not apply")
    prompt_len = _positive_int("prompt_len", prompt_len)
    new_tokens = _positive_int("new_tokens", new_tokens, minimum=2)
    sizes = _batch_sizes(batch_sizes)
    if cache not in CACHES:
        raise ValueError(f"cache must be one of {', '.join(CACHES)}, got {cache!r}")
    home = timed_device(model, device)
    run = plan(model, options, home)
    clock = clock_for(home)
    rows = []
    with model_lock(model), rng_restored(), backend_settings(run), prepared_model(model, run) as (work, plain):
        call = _Caller(plain, cache, prompt_len + new_tokens - 1)
        ceiling = ceiling_for(home, run.precision.name, options.threads) if hardware else None
        for batch in sizes:
            ids = _prompt(prompt, batch, prompt_len, plain, home)
            rows.append(_measure(work, plain, call, ids, new_tokens, clock, options, ceiling))
    threads = options.threads or torch.get_num_threads()
    notes = ["decode: new_tokens - 1 timed steps per generation (the prefill makes the first token); "
             "tokens/s = batch / decode p50", "flops_per_token: counted FLOPs of the first decode step / batch "
             "(later steps attend over more positions)"]
    if ceiling is not None and home.type == "cpu":
        notes.append("MBU on the CPU is against the measured copy bandwidth (read + write), not a datasheet peak")
    if ceiling is not None and ceiling.peak_flops is None:
        notes.append("no theoretical peak FLOP/s for this device and precision: MFU left empty")
    return GenerationReport(
        model=name or type(model).__name__, device=str(home), dtype=run.precision.name, prompt_len=prompt_len,
        new_tokens=new_tokens, cache=cache, compiled=options.compile, timer=clock.name,
        settings={"warmup_runs": options.warmup, "warmup_time_s": options.warmup_time,
                  "min_time_s": options.min_time, "min_runs": options.min_runs, "max_time_s": options.max_time,
                  "compile": options.compile, "cache": cache, "greedy": True, "inference_mode": True},
        environment=environment(home, threads), rows=tuple(rows), ceiling=ceiling, notes=tuple(notes))


class _Caller:
    """How to call this model: its cache keyword, a fresh cache, end-of-sequence ids to suppress."""

    def __init__(self, model: nn.Module, cache: str, max_len: int):
        params = inspect.signature(type(model).forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.extra = {"use_cache": True}
        if "logits_to_keep" in params:  # only the last position's logits, as generate() asks
            self.extra["logits_to_keep"] = 1
        self.kind, self.max_len, self.config = cache, max_len, model.config
        vocab = getattr(model.config, "vocab_size", None)
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos = [e for e in eos if vocab is None or 0 <= e < vocab]

    def new_cache(self):
        from transformers import DynamicCache, StaticCache

        if self.kind == "static":
            return StaticCache(config=self.config, max_cache_len=self.max_len)
        return DynamicCache(config=self.config)

    def __call__(self, module, ids, cache):
        out = module(input_ids=ids, **{self.cache_kw: cache}, **self.extra)
        returned = getattr(out, "cache", None) if self.cache_kw == "cache" else getattr(out, "past_key_values", None)
        logits = getattr(out, "logits", None)
        if logits is None:  # BERT, T5 without their LM head: nothing to pick the next token from
            raise ValueError(f"{type(module).__name__} returns no logits: generation needs a causal LM with a head "
                             f"(e.g. GPT2LMHeadModel, LlamaForCausalLM)")
        return logits, returned if returned is not None else cache

    def next_token(self, logits: torch.Tensor) -> torch.Tensor:
        scores = logits[:, -1, :]
        if self.eos:  # a fixed number of tokens: end-of-sequence suppressed, as min_new_tokens does
            scores = scores.clone()
            scores[:, self.eos] = float("-inf")
        return scores.argmax(dim=-1)


def _prompt(prompt, batch: int, prompt_len: int, model: nn.Module, device: torch.device) -> torch.Tensor:
    if prompt is None:
        vocab = getattr(model.config, "vocab_size", None)
        if not isinstance(vocab, int) or vocab < 1:
            raise ValueError("the model's config has no vocab_size: pass prompt= token ids")
        generator = torch.Generator().manual_seed(batch)  # not the global RNG
        ids = torch.randint(0, vocab, (batch, prompt_len), generator=generator)
    else:
        ids = prompt(batch) if callable(prompt) else prompt
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32) or ids.dim() not in (1, 2):
            raise ValueError("prompt must be integer token ids of shape (batch, len) or (len,), or a callable of the "
                             "batch size making them")
        ids = ids.long()
        if ids.dim() == 1:
            ids = ids.expand(batch, -1)
        if ids.shape != (batch, prompt_len):
            raise ValueError(f"prompt has shape {tuple(ids.shape)}, expected ({batch}, {prompt_len}) "
                             f"(batch, prompt_len)")
    return ids.contiguous().to(device)


def cache_tensors(cache) -> list[torch.Tensor]:
    """The K and V tensors a cache holds: transformers' layered caches (``.layers[i].keys``),
    older ones (``key_cache``/``value_cache``) or the legacy tuple of (K, V) per layer."""
    found = []
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            found += [getattr(layer, "keys", None), getattr(layer, "values", None)]
    elif hasattr(cache, "key_cache"):
        found = [*cache.key_cache, *cache.value_cache]
    elif isinstance(cache, (tuple, list)):
        found = [t for layer in cache for t in layer]
    unique = {id(t): t for t in found if isinstance(t, torch.Tensor) and t.numel()}
    return list(unique.values())


def _generate(work, call: _Caller, ids, new_tokens: int, clock, prefill: list, decode: list, keep: dict):
    cache = call.new_cache()
    started = clock.start()
    logits, cache = call(work, ids, cache)
    token = call.next_token(logits)
    prefill.append(clock.stop(started))
    tokens = [token]
    for _ in range(new_tokens - 1):
        started = clock.start()
        logits, cache = call(work, token[:, None], cache)
        token = call.next_token(logits)
        decode.append(clock.stop(started))
        tokens.append(token)
    keep["cache"], keep["tokens"] = cache, tokens


def _measure(work, plain, call: _Caller, ids, new_tokens: int, clock, options, ceiling) -> GenerationRow:
    batch, prompt_len = ids.shape
    prefill, decode, keep = [], [], {}

    def generation():
        _generate(work, call, ids, new_tokens, clock, prefill, decode, keep)

    with torch.inference_mode():
        sample(generation, clock, min_time=options.warmup_time, min_runs=options.warmup,
               max_runs=max(options.warmup, 1000))
        clock.synchronize()
        prefill.clear()
        decode.clear()
        totals = sample(generation, clock, min_time=options.min_time, min_runs=options.min_runs,
                        max_runs=options.max_runs, max_time=options.max_time)
        tensors = cache_tensors(keep["cache"])
        kv_bytes = sum(t.numel() * t.element_size() for t in tensors)
        positions = max((t.shape[-2] for t in tensors if t.dim() >= 2), default=0)
        output = tuple(tuple(int(v) for v in seq) for seq in torch.stack(keep["tokens"], dim=1).tolist())
        keep.clear()
    prefill_flops, decode_flops = _counted(plain, call, ids)
    weight_bytes = sum(p.numel() * p.element_size() for p in plain.parameters())
    # decode step i (1 .. new_tokens-1) reads prompt_len + i positions: the mean is prompt_len + new_tokens/2
    per_position = kv_bytes / positions if positions else 0.0
    decode_bytes = weight_bytes + per_position * (prompt_len + new_tokens / 2)
    prefill_stats, decode_stats = LatencyStats.of(prefill), LatencyStats.of(decode)
    mfu = mbu = None
    if ceiling is not None:
        if ceiling.peak_flops and prefill_flops:
            mfu = prefill_flops / prefill_stats.p50 / ceiling.peak_flops
        if ceiling.peak_bandwidth:
            mbu = decode_bytes / decode_stats.p50 / ceiling.peak_bandwidth
    return GenerationRow(
        batch_size=batch, prefill=prefill_stats, decode=decode_stats, generation=LatencyStats.of(totals),
        generations=len(totals), decode_steps=new_tokens - 1, kv_cache_bytes=kv_bytes,
        kv_cache_positions=positions, weight_bytes=weight_bytes, decode_bytes=decode_bytes,
        prefill_flops=prefill_flops, decode_flops=decode_flops, mfu_prefill=mfu, mbu_decode=mbu,
        output_ids=output)


def _counted(plain, call: _Caller, ids) -> tuple[int | None, int | None]:
    """Counted forward FLOPs of the prefill and of the first decode step, on the uncompiled module
    with a fresh cache of the same kind (the count runs the model for real and fills it)."""
    cache = call.new_cache()
    inputs = {"input_ids": ids, call.cache_kw: cache, **call.extra}
    prefill = count(plain, inputs=inputs, batch_size=ids.shape[0])
    # the count left the cache at prompt_len positions; a decode step's FLOPs do not depend on the token
    step = count(plain, inputs={"input_ids": ids[:, -1:], call.cache_kw: cache, **call.extra},
                 batch_size=ids.shape[0])
    return prefill.flops, step.flops
