"""ProfileReport: one profile's counts, timing and hardware comparison, made once.

Every output format (table, JSON, CSV, Markdown, plots) reads this one value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from .counting.result import LayerRecord, layer_dict
from .dtypes import PRECISIONS
from .report import render, trace
from .memory.result import MemoryReport
from .timing.result import BenchmarkReport
from .values import Value

STORAGE_PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class ProfileReport(Value):
    """Everything torchprof_lab measured about one model; render with str(), to_json() etc.

    ``dtype`` is the precision the counts describe (the timed precision when timed).
    """

    model: str
    inputs: str
    batch_size: int
    device: str
    mode: str
    backward: bool
    params: int
    trainable_params: int
    params_used: int
    buffers: int
    buffer_bytes: int
    state_dict_bytes: int
    param_dtype: str
    model_record: LayerRecord
    layers: tuple[LayerRecord, ...]
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    depth: int | None = None
    timing: BenchmarkReport | None = None
    dtype: str = "fp32"
    notes: tuple[str, ...] = ()
    memory: MemoryReport | None = None  # profile(..., memory=True): the step's peak memory
    embedding_params: int = 0  # parameters of nn.Embedding tables (token, position), each once
    tokens_per_sample: int | None = None  # the sequence length, for a token model (llm.py)
    model_flops_per_token: float | None = None  # PaLM's 6N + 12LHQT (a third for inference), llm.py
    transformer_shape: dict | None = None  # L, H, Q, h, V the PaLM figure was computed with

    # ------------------------------------------------------------------ totals
    @property
    def macs(self) -> int:
        return self.model_record.macs

    @property
    def flops(self) -> int:
        return self.model_record.flops

    @property
    def bytes(self) -> int:
        return self.model_record.bytes

    @property
    def backward_macs(self) -> int:
        return self.model_record.backward_macs

    @property
    def backward_flops(self) -> int:
        return self.model_record.backward_flops

    @property
    def backward_bytes(self) -> int:
        return self.model_record.backward_bytes

    @property
    def total_macs(self) -> int:
        return self.model_record.total_macs

    @property
    def total_flops(self) -> int:
        return self.model_record.total_flops

    @property
    def intensity(self) -> float:
        return self.model_record.intensity

    @property
    def achieved_flops(self) -> float | None:
        """The whole model's FLOP/s: its FLOPs over its per-layer-pass latency, else the first
        timed row's achieved FLOP/s (what the roofline draws as the model's point)."""
        if self.model_record.latency:
            return self.flops / self.model_record.latency
        rows = self.timing.rows if self.timing is not None else ()
        return rows[0].achieved_flops if rows and rows[0].ok and rows[0].achieved_flops else None

    @property
    def params_without_embeddings(self) -> int:
        return self.params - self.embedding_params

    @property
    def flops_per_token(self) -> float | None:
        """Forward FLOPs per token (batch x sequence length tokens), for a token model."""
        return self.flops / (self.batch_size * self.tokens_per_sample) if self.tokens_per_sample else None

    @property
    def train_flops_per_token(self) -> float | None:
        """Forward + backward FLOPs per token, when the backward was counted."""
        if not self.tokens_per_sample or not self.backward:
            return None
        return self.total_flops / (self.batch_size * self.tokens_per_sample)

    @property
    def storage_bytes(self) -> dict[str, int]:
        """Parameter storage if every parameter were held in each dtype (params x dtype size)."""
        return {name: self.params * PRECISIONS[name].bytes for name in STORAGE_PRECISIONS}

    def layer(self, name: str) -> LayerRecord:
        """The record of the layer called ``name`` (as in ``named_modules``)."""
        for record in self.layers:
            if record.name == name:
                return record
        raise KeyError(f"no layer named '{name}'")

    # ------------------------------------------------------------------ renderings
    def to_dict(self) -> dict:
        skip = ("model_record", "layers", "depth", "timing", "notes", "memory")  # rendered below, or not data
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        data["notes"] = list(self.notes)
        data["uncounted_ops"] = dict(self.uncounted_ops)
        for key in ("macs", "flops", "bytes", "backward_macs", "backward_flops", "backward_bytes",
                    "total_macs", "total_flops", "intensity", "achieved_flops", "storage_bytes", "params_without_embeddings",
                    "flops_per_token", "train_flops_per_token"):
            data[key] = getattr(self, key)
        data["conventions"] = "MACs: multiply-accumulates of matrix ops; FLOPs = 2 x MACs + other ops"
        data["layers"] = [layer_dict(r) for r in self.layers]
        data["timing"] = self.timing.to_dict() if self.timing else None
        data["memory"] = self.memory.to_dict() if self.memory else None
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(render.jsonable(self.to_dict()), indent=indent, allow_nan=False)

    def to_csv(self) -> str:
        return render.to_csv(self)

    def to_markdown(self) -> str:
        return render.to_markdown(self)

    def to_chrome_trace(self) -> dict:
        """The per-layer pass as a Chrome trace-event object (ui.perfetto.dev); needs per_layer=True."""
        return trace.to_chrome_trace(self)

    def to_table(self, depth: int | None = None) -> str:
        return render.to_table(self, self.depth if depth is None else depth)

    def to_html(self, depth: int | None = None) -> str:
        """One self-contained HTML page (no network): every layer, shown down to ``depth`` (None or a
        positive integer) at first; the report's own depth 0 (totals only) shows every layer."""
        return render.render(self, "html", (self.depth or None) if depth is None else depth)

    def __str__(self) -> str:
        return self.to_table()

