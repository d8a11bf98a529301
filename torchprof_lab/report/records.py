"""The result records: one per layer, one for the whole model; every output format reads these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .timing_records import BenchmarkReport

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


@dataclass
class LayerRecord:
    """One module's cost in one pass: its own ops plus its children's (forward and backward)."""

    name: str
    type: str
    depth: int
    params: int
    calls: int
    output_shape: object
    macs: int
    flops: int
    bytes: int
    backward_macs: int = 0
    backward_flops: int = 0
    backward_bytes: int = 0
    latency: float | None = None  # median seconds per forward, when per-layer timing ran
    bound: str | None = None  # "memory" or "compute" against the device's ridge point
    min_time: float | None = None  # roofline lower bound: max(FLOPs / peak, bytes / bandwidth)

    @property
    def ran(self) -> bool:
        return self.calls > 0

    @property
    def total_macs(self) -> int:
        return self.macs + self.backward_macs

    @property
    def total_flops(self) -> int:
        return self.flops + self.backward_flops

    @property
    def intensity(self) -> float:
        """Forward arithmetic intensity, FLOPs per byte moved (0 when nothing moved)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def time_over_bound(self) -> float | None:
        """Measured latency / roofline lower bound (1.0 would be running at the roofline)."""
        if self.latency is None or not self.min_time:
            return None
        return self.latency / self.min_time


@dataclass
class ProfileReport:
    """Everything torchprof_lab measured about one model; render with str(), to_json() etc."""

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
    layers: list[LayerRecord]
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    depth: int | None = None
    timing: "BenchmarkReport | None" = None

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
    def storage_bytes(self) -> dict[str, int]:
        """Parameter storage if every parameter were held in each dtype (params x dtype size)."""
        return {name: self.params * size for name, size in DTYPE_BYTES.items()}

    def layer(self, name: str) -> LayerRecord:
        """The record of the layer called ``name`` (as in ``named_modules``)."""
        for record in self.layers:
            if record.name == name:
                return record
        raise KeyError(f"no layer named '{name}'")

    # ------------------------------------------------------------------ renderings
    def to_dict(self) -> dict:
        skip = ("model_record", "layers", "depth", "timing")  # rendered below, or not data
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        data["uncounted_ops"] = dict(self.uncounted_ops)
        for key in ("macs", "flops", "bytes", "backward_macs", "backward_flops", "backward_bytes",
                    "total_macs", "total_flops", "intensity", "storage_bytes"):
            data[key] = getattr(self, key)
        data["conventions"] = "MACs: multiply-accumulates of matrix ops; FLOPs = 2 x MACs + other ops"
        data["layers"] = [_layer_dict(r) for r in self.layers]
        data["timing"] = self.timing.to_dict() if self.timing else None
        return data

    def to_json(self, indent: int | None = 2) -> str:
        from .render import to_json
        return to_json(self, indent)

    def to_csv(self) -> str:
        from .render import to_csv
        return to_csv(self)

    def to_markdown(self) -> str:
        from .render import to_markdown
        return to_markdown(self)

    def to_table(self, depth: int | None = None) -> str:
        from .render import to_table
        return to_table(self, self.depth if depth is None else depth)

    def __str__(self) -> str:
        return self.to_table()


def _layer_dict(record: LayerRecord) -> dict:
    data = asdict(record)
    data["intensity"] = record.intensity
    data["time_over_bound"] = record.time_over_bound
    return data
