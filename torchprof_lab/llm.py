"""Token models: token-id inputs, sweeps over batch size and sequence length, per-token figures.

The formulas a language model's cost is usually quoted in, so our counts compare with
published figures (docs/llm.md):

- PaLM's model FLOPs per token (Chowdhery et al. 2022, appendix B): ``6N + 12 L H Q T`` for a
  training step, N the non-embedding parameters, L layers, H heads, Q the head dimension, T the
  sequence length. MFU = those FLOPs x tokens/s / peak, whatever the implementation really runs.
- Megatron-LM's FLOPs per iteration (Narayanan et al. 2021, section 5.1, no recomputation):
  ``72 B s l h^2 (1 + s / 6h + V / 12 l h)`` for a GPT with a 4h MLP and the output layer.

``profile_tokens`` runs ``api.profile`` once per sequence length with token-id inputs and
joins the rows (one per (batch, sequence length)), each knowing its tokens per sample.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .api import profile, profile_memory
from .global_swap import GlobalSwap
from .timing.options import TimingOptions
from .result import ProfileReport

_LAYERS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HEADS = ("num_attention_heads", "n_head", "num_heads", "n_heads")
_HIDDEN = ("hidden_size", "n_embd", "d_model", "dim")


@dataclass(frozen=True)
class TransformerShape:
    """The numbers the per-token formulas need: L layers, H heads, Q head dim, hidden width h,
    vocabulary V, key/value heads (fewer than H under grouped-query attention)."""

    layers: int
    heads: int
    head_dim: int
    hidden: int
    vocab: int | None = None
    kv_heads: int | None = None

    def to_dict(self) -> dict:
        return {"layers": self.layers, "heads": self.heads, "head_dim": self.head_dim, "hidden": self.hidden,
                "vocab": self.vocab, "kv_heads": self.kv_heads}


def _first(config, names):
    for name in names:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def transformer_shape(config) -> TransformerShape | None:
    """L, H, Q, h (and V, KV heads) from a transformers config or a mapping with those keys
    (``layers``, ``heads``, ``head_dim``, ``hidden``, ``vocab``); None when it does not say."""
    if isinstance(config, TransformerShape):
        return config
    if isinstance(config, Mapping) and "layers" in config:
        heads, hidden = config["heads"], config.get("hidden")
        head_dim = config.get("head_dim") or (hidden // heads if hidden else None)
        return TransformerShape(config["layers"], heads, head_dim, hidden or heads * head_dim,
                                config.get("vocab"), config.get("kv_heads"))
    layers, heads, hidden = _first(config, _LAYERS), _first(config, _HEADS), _first(config, _HIDDEN)
    if not layers or not heads:
        return None
    head_dim = _first(config, ("head_dim", "d_kv")) or (hidden // heads if hidden else None)
    if not head_dim:
        return None
    if getattr(config, "is_encoder_decoder", False):  # T5: encoder and decoder stacks
        layers += _first(config, ("num_decoder_layers",)) or layers
    return TransformerShape(layers, heads, head_dim, hidden or heads * head_dim, _first(config, ("vocab_size",)),
                            _first(config, ("num_key_value_heads",)))


def palm_flops_per_token(config_or_numbers, seq_len: int, params: int | None = None, *,
                         train: bool = True) -> float:
    """PaLM's model FLOPs per token, ``6N + 12 L H Q T`` (Chowdhery et al. 2022, appendix B).

    ``config_or_numbers``: a transformers config, a TransformerShape, or a mapping with
    ``layers``, ``heads``, ``head_dim`` (or ``hidden``) and optionally ``params``; ``params``
    (N) is the non-embedding parameter count. ``train=False`` gives the forward's third,
    ``2N + 4 L H Q T``.
    """
    shape = transformer_shape(config_or_numbers)
    if shape is None:
        raise ValueError("the config does not say its layers, heads and head dimension")
    if params is None and isinstance(config_or_numbers, Mapping):
        params = config_or_numbers.get("params")
    if params is None:
        raise ValueError("params (N, the non-embedding parameters) is required")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    flops = 6 * params + 12 * shape.layers * shape.heads * shape.head_dim * seq_len
    return flops if train else flops / 3


def megatron_flops_per_iteration(batch: int, seq_len: int, layers: int, hidden: int, vocab: int) -> float:
    """Megatron-LM's training FLOPs of a GPT, ``72 B s l h^2 (1 + s/6h + V/12lh)`` (Narayanan et
    al. 2021, no activation recomputation): forward + backward of every matmul (QKV, attention
    scores and values, out-projection, a 4h MLP, the output layer); layer norms, softmax,
    activations and biases are left out."""
    b, s, l, h, v = batch, seq_len, layers, hidden, vocab
    return 72 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h))


def token_inputs(vocab_size: int, seq_len: int, *, mask: bool = True, decoder: bool = False,
                 plain: bool = False, extra: Mapping | None = None):
    """A callable ``batch -> inputs``: int64 ids in [0, vocab_size) of shape (batch, seq_len);
    a dict with ``input_ids`` and (``mask``) an all-ones ``attention_mask`` (and, for an
    encoder-decoder, ``decoder_input_ids``) and ``extra`` keywords, or the plain tensor (``plain``)."""
    for what, value in (("vocab_size", vocab_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")

    def make(batch: int):
        ids = torch.randint(vocab_size, (batch, seq_len), dtype=torch.long)
        if plain:
            return ids
        made = {"input_ids": ids}
        if mask:
            made["attention_mask"] = torch.ones(batch, seq_len, dtype=torch.long)
        if decoder:
            made["decoder_input_ids"] = torch.randint(vocab_size, (batch, seq_len), dtype=torch.long)
        return {**made, **(extra or {})}

    return make


def profile_tokens(model: nn.Module, seq_lens: Sequence[int], batch_sizes: Sequence[int] | None = None, *,
                   vocab_size: int | None = None, config=None, mask: bool = True, decoder: bool | None = None,
                   plain: bool = False, inputs=None, notes: Sequence[str] = (), **kwargs) -> ProfileReport:
    """``api.profile`` over every (batch size, sequence length): one timing row per pair, each
    with its tokens per sample and tokens/s; per-token FLOPs, parameters without embeddings
    and, for a model with a transformers-style ``config``, PaLM's model FLOPs and MFU.

    ``inputs``: a callable ``(batch, seq_len) -> inputs`` instead of the token ids made from
    ``vocab_size`` (default ``config.vocab_size``). Other keywords go to ``api.profile``
    (timing, device, options, train ...); the per-layer table is the first sequence length's.
    """
    seq_lens = _positive_list(seq_lens, "seq_lens")
    if inputs is None:
        vocab_size = vocab_size or getattr(config, "vocab_size", None)
        if vocab_size is None:
            raise ValueError("vocab_size is required (or a config with vocab_size): token ids must lie inside "
                             "the vocabulary")
        if decoder is None:
            decoder = bool(getattr(config, "is_encoder_decoder", False))
    on_meta = str(kwargs.get("device")) == "meta"
    if on_meta and mask and not plain and inputs is None:
        mask = False
        notes = (*notes, "on meta the attention mask is left out: transformers reads its values "
                         "(padding_mask.all()), which meta tensors do not have; an all-ones mask is skipped the "
                         "same way, so the counts match")
    if len(seq_lens) > 1 and not kwargs.get("timing", True):
        raise ValueError(f"counting only takes one sequence length, got {len(seq_lens)}")
    memory = kwargs.pop("memory", False)
    # a forward to profile is not generation: no KV cache built (and copied into) on the way
    extra = {"use_cache": False} if getattr(config, "use_cache", False) and not plain else None
    reports = []
    with unpacked_sequences_on_meta() if inputs is None else contextlib.nullcontext():
        for seq in seq_lens:
            make = ((lambda b, s=seq: inputs(b, s)) if inputs is not None
                    else token_inputs(vocab_size, seq, mask=mask, decoder=decoder, plain=plain, extra=extra))
            reports.append(per_token(profile(model, batch_sizes=batch_sizes, inputs=make, **kwargs), seq,
                                     config=config))
    first = reports[0]
    if memory is not False:
        first = replace(first, memory=_token_memory(model, memory, seq_lens[0], batch_sizes, kwargs,
                                                    inputs=inputs, vocab_size=vocab_size, decoder=decoder,
                                                    plain=plain, extra=extra))
        notes = (*notes, "memory: the token ids without an attention mask (an all-ones mask is skipped by "
                         "transformers the same way; the mask's own B x T x 8 bytes are left out)") \
            if inputs is None and not plain else notes
    if first.timing is not None:
        rows = tuple(row for r in reports if r.timing is not None for row in r.timing.rows)
        first = replace(first, timing=replace(first.timing, rows=rows, input=_sweep_label(seq_lens)))
    return replace(first, notes=(*first.notes, *notes)) if notes else first


def _token_memory(model, memory, seq: int, batch_sizes, kwargs, *, inputs, vocab_size, decoder, plain, extra):
    """The profile's memory section for the first (batch, sequence length); the ids carry no mask, so
    the same inputs serve a real run and the meta predictions of ``max_batch``."""
    make = ((lambda b: inputs(b, seq)) if inputs is not None
            else token_inputs(vocab_size, seq, mask=False, decoder=decoder, plain=plain, extra=extra))
    ours = contextlib.nullcontext if inputs is not None else unpacked_sequences_on_meta
    settings = {k: v for k, v in kwargs.items() if k not in TimingOptions.__dataclass_fields__ and k != "options"}
    timed = {k: v for k, v in kwargs.items() if k in TimingOptions.__dataclass_fields__}
    options = TimingOptions.of(kwargs.get("options"), **timed)
    with ours():
        found = profile_memory(model, None, None, memory, options,
                               {**settings, "inputs": make, "batch_sizes": batch_sizes})
    if found.predictor is None:
        return found
    predict = found.predictor

    def predictor(batch: int) -> int:
        with ours():
            return predict(batch)

    return replace(found, predictor=predictor)


def _not_packed_on_meta(find, position_ids):
    """transformers' ``find_packed_sequence_indices`` while the profiler's own token ids run."""
    if isinstance(position_ids, torch.Tensor) and position_ids.device.type == "meta":
        return None
    return find(position_ids)


_PACKED_CHECK: list = []  # the GlobalSwap of transformers' check, made on first use


@contextlib.contextmanager
def unpacked_sequences_on_meta():
    """transformers' check for packed sequences (``masking_utils.find_packed_sequence_indices``, run
    when a causal LM has no mask and no cache) reads the position ids' values, which meta tensors
    lack. The token ids made here hold one sequence per row (positions 0..T-1): on meta the check
    answers "not packed", as it would on the CPU; real tensors go to transformers' own check."""
    try:
        from transformers import masking_utils
    except ImportError:  # no transformers: nothing to answer
        yield
        return
    if not _PACKED_CHECK:
        _PACKED_CHECK.append(GlobalSwap(masking_utils, "find_packed_sequence_indices"))
    with _PACKED_CHECK[0].installed(_not_packed_on_meta):
        yield


def per_token(report: ProfileReport, seq_len: int, *, config=None) -> ProfileReport:
    """``report`` with its tokens per sample, and each timing row's; with a ``config`` (L, H, Q)
    also PaLM's model FLOPs per token and each row's model FLOPs utilisation."""
    shape = transformer_shape(config) if config is not None else None
    train = report.timing.mode == "train" if report.timing is not None else report.backward
    model_flops = (palm_flops_per_token(shape, seq_len, report.params_without_embeddings, train=train)
                   if shape is not None else None)
    timing = report.timing
    if timing is not None:
        peak = getattr(timing.ceiling, "peak_flops", None)
        rows = []
        for row in timing.rows:
            row = replace(row, tokens_per_sample=seq_len)
            if model_flops is not None and peak and row.tokens_per_s:
                row = replace(row, model_flops_utilisation=model_flops * row.tokens_per_s / peak)
            rows.append(row)
        timing = replace(timing, rows=tuple(rows))
    return replace(report, tokens_per_sample=seq_len, model_flops_per_token=model_flops, timing=timing,
                   transformer_shape=shape.to_dict() if shape is not None else None)


def _sweep_label(seq_lens) -> str:
    return f"token ids, sequence lengths {', '.join(map(str, seq_lens))}"


def _positive_list(values, what: str) -> list[int]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{what} must be a non-empty list of positive integers, got {values!r}")
    return list(values)
