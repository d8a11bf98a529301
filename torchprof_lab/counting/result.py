"""The per-layer record counting makes: one per module, one for the whole model.

Values, made once: the per-layer latency and the roofline bound join a record as a new
record (dataclasses.replace), never by writing into it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
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
    # a module inside it ran (its costs are rolled in) though it may not have been called itself:
    # a ModuleList, or a container whose parent calls its children directly
    descendants_ran: bool = False

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


def layer_dict(record: LayerRecord) -> dict:
    data = asdict(record)
    data["intensity"] = record.intensity
    data["time_over_bound"] = record.time_over_bound
    return data
