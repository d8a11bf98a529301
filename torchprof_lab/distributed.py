"""A data-parallel training step timed on every rank of a torch.distributed group, and with
``memory=True`` its memory measured on every rank: DistributedDataParallel, or with ``shard=True``
FSDP2's ``fully_shard`` (parameters, gradients and optimizer state sharded across the ranks).

Call ``ddp_benchmark`` inside an initialised process group (torchrun does that for the CLI's
``--ddp`` and ``--fsdp``); rank 0 gets the report, the other ranks None.
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .memory.api import memory_of_parallel_step
from .memory.result import MemoryReport
from .memory.tracker import PARALLEL_CATEGORIES
from .model_state import model_copy
from .report import render
from .timing.loop import clock_for, sample
from .timing.options import TimingOptions
from .timing.prepare import backend_settings, example_batch, make_step, plan
from .timing.stats import LatencyStats
from .torch_internals import fsdp_buffer_ops


def allreduce_bytes_per_rank(param_bytes: int, world_size: int) -> float:
    """Bytes each rank sends (and receives) in a ring all-reduce of the gradients: 2(N-1)/N x size."""
    return param_bytes * 2 * (world_size - 1) / world_size


def shard_traffic_bytes_per_rank(param_bytes: int, world_size: int) -> float:
    """Bytes each rank sends in an FSDP2 step: the parameters all-gathered in forward and again in
    backward, the gradients reduce-scattered, each (N-1)/N x size (a root module's own parameters,
    kept gathered from forward to backward, are gathered once)."""
    return param_bytes * 3 * (world_size - 1) / world_size


def scaling_efficiency(total_samples_per_s: float, world_size: int, single_samples_per_s: float) -> float:
    """throughput(N) / (N x single-process throughput): 1.0 is perfect linear scaling."""
    return total_samples_per_s / (world_size * single_samples_per_s)


@dataclass(frozen=True)
class RankRow:
    rank: int
    host: str
    device: str
    threads: int
    latency: LatencyStats
    batch_size: int
    comm_s_per_step: float | None  # DDP: all-reduce launch-to-completion, summed over buckets; FSDP2: None
    memory: MemoryReport | None = None  # with memory=True: this rank's step, measured by memory's tracker

    @property
    def samples_per_s(self) -> float:
        return self.batch_size / self.latency.p50

    def to_dict(self) -> dict:
        return {"rank": self.rank, "host": self.host, "device": self.device, "threads": self.threads,
                "batch_size": self.batch_size, "latency_s": self.latency.to_dict(with_samples=False),
                "samples_per_s": self.samples_per_s, "comm_s_per_step": self.comm_s_per_step,
                "memory": None if self.memory is None else self.memory.to_dict()}


@dataclass(frozen=True)
class DistributedReport(render.Rendered):
    model: str
    backend: str
    world_size: int
    batch_size_per_rank: int
    param_bytes: int
    single_samples_per_s: float
    single_source: str  # "measured on rank 0 in this run" or "given"
    rows: tuple[RankRow, ...] = ()
    dtype: str = "fp32"  # the step's precision ("bf16" with autocast: see autocast)
    autocast: bool = False
    strategy: str = "ddp"  # "ddp" (replicas, gradients all-reduced) or "fsdp2" (fully_shard)

    @property
    def total_samples_per_s(self) -> float:
        return sum(r.samples_per_s for r in self.rows)

    @property
    def slowest_rank(self) -> int:
        return max(self.rows, key=lambda r: r.latency.p50).rank

    @property
    def efficiency(self) -> float:
        return scaling_efficiency(self.total_samples_per_s, self.world_size, self.single_samples_per_s)

    @property
    def allreduce_bytes_per_step(self) -> float:
        return allreduce_bytes_per_rank(self.param_bytes, self.world_size)

    @property
    def comm_bytes_per_step(self) -> float:
        """Bytes each rank sends per step: DDP's all-reduce, or FSDP2's all-gathers and reduce-scatter."""
        if self.strategy == "fsdp2":
            return shard_traffic_bytes_per_rank(self.param_bytes, self.world_size)
        return self.allreduce_bytes_per_step

    def to_dict(self) -> dict:
        return {"model": self.model, "strategy": self.strategy, "backend": self.backend,
                "world_size": self.world_size,
                "batch_size_per_rank": self.batch_size_per_rank, "dtype": self.dtype, "autocast": self.autocast,
                "param_bytes": self.param_bytes,
                "single_samples_per_s": self.single_samples_per_s, "single_source": self.single_source,
                "total_samples_per_s": self.total_samples_per_s, "slowest_rank": self.slowest_rank,
                "scaling_efficiency": self.efficiency, "comm_bytes_per_step": self.comm_bytes_per_step,
                "allreduce_bytes_per_step": self.allreduce_bytes_per_step if self.strategy == "ddp" else None,
                "ranks": [r.to_dict() for r in self.rows]}


def _timing_hook(record: list):
    """A DDP comm hook: the default averaging all-reduce, with its launch-to-completion time kept."""
    def hook(state, bucket):
        world = dist.get_world_size()
        started = time.perf_counter()
        future = dist.all_reduce(bucket.buffer().div_(world), async_op=True).get_future()

        def finished(fut):
            record.append(time.perf_counter() - started)
            return fut.value()[0]

        return future.then(finished)

    return hook


def _replicate(work: nn.Module, device: torch.device, local_rank: int) -> DistributedDataParallel:
    return DistributedDataParallel(work, device_ids=[local_rank] if device.type == "cuda" else None)


def fully_shard_children(work: nn.Module, device: torch.device) -> nn.Module:
    """FSDP2 in place: ``fully_shard`` on each direct child with trainable parameters (one all-gather
    group each, as torch's examples shard each transformer block), then on the model (the
    parameters left); returns ``work``, whose parameters are now this rank's DTensor shards."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for child in work.children():
        if any(p.requires_grad for p in child.parameters()):
            fully_shard(child, mesh=mesh)
    fully_shard(work, mesh=mesh)
    return work


def _recorded_allreduce(tracker):
    """A DDP comm hook: each bucket's flat buffer is recorded as a communication buffer, then torch's
    default all-reduce hook runs (the average, as DDP without a hook)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    def hook(state, bucket):
        tracker.track(bucket.buffer(), "comm_buffers")
        return allreduce_hook(state, bucket)

    return hook


DDP_MEMORY_NOTE = ("comm_buffers are DDP's gradient buckets (each bucket recorded by a comm hook, then torch's "
                   "default all-reduce): one more copy of the gradients, as gradient_as_bucket_view=False "
                   "(DDP's default); DDP allocates them in C++ through the dispatcher, so the tracker sees them "
                   "as it sees the step; the third step is reported (DDP rebuilds its buckets at the second)")
FSDP_MEMORY_NOTE = ("FSDP2: parameters, gradients and optimizer state are this rank's shards (a DTensor counted by "
                    "its local tensor); gathered_parameters are the all-gathered (unsharded) parameters, which "
                    "FSDP2 allocates and frees by resizing their storage (followed through "
                    "UntypedStorage.resize_, which no dispatch mode sees); comm_buffers are the flat all-gather "
                    "and reduce-scatter buffers; the gradients before reduce-scatter count as temporary")


def _rank_memory(model: nn.Module, input_shape, batch_size: int, run, device: torch.device, local_rank: int,
                 sharded: bool, name: str) -> MemoryReport:
    """This rank's training step measured by memory's tracker, DDP or FSDP2 around the step's copy."""
    def replicated(work, tracker):
        ddp = _replicate(work, device, local_rank)
        ddp.register_comm_hook(None, _recorded_allreduce(tracker))
        return ddp

    def sharded_copy(work, tracker):
        gather_in, scatter_in, gather_out = fsdp_buffer_ops()
        tracker.op_categories = {gather_in: "comm_buffers", scatter_in: "comm_buffers",
                                 gather_out: "gathered_parameters"}
        tracker.resizes = True
        return fully_shard_children(work, device)

    dtype = None if run.precision.tf32 else run.precision.name  # TF32 is a math mode: fp32 bytes
    report = memory_of_parallel_step(model, input_shape, batch_size, wrap=sharded_copy if sharded else replicated,
                                     device=device, categories=PARALLEL_CATEGORIES,
                                     optimizer=run.options.optimizer, dtype=dtype, name=name,
                                     notes=(FSDP_MEMORY_NOTE if sharded else DDP_MEMORY_NOTE,))
    gc.collect()  # the measured copy's DDP reducer goes now, not at interpreter exit
    return report


def _steps_everyone_runs(step, clock, min_time: float, min_runs: int) -> int:
    """The same step count on every rank (collectives must match): enough for the slowest rank."""
    per_step = torch.tensor([sum(sample(step, clock, min_runs=3, max_runs=3)) / 3], dtype=torch.float64)
    dist.all_reduce(per_step, op=dist.ReduceOp.MAX)
    return max(min_runs, math.ceil(min_time / max(per_step.item(), 1e-9)))


def ddp_benchmark(model: nn.Module, input_shape, batch_size: int = 8, *, options: TimingOptions | None = None,
                  single_samples_per_s: float | None = None, name: str | None = None, memory: bool = False,
                  shard: bool = False, **settings) -> DistributedReport | None:
    """Time the DDP training step (forward, loss, backward with gradient all-reduce, optimizer
    step) on every rank; rank 0 also times the plain step alone (others wait) for the scaling
    baseline. ``options`` or its fields as keywords, as for benchmark; train is implied.

    ``shard=True``: the FSDP2 step instead (see ``fully_shard_children``). ``memory=True``: first
    each rank measures the memory of its step with memory's tracker (``RankRow.memory``): the
    categories of ``memory()`` plus comm_buffers (DDP's buckets; FSDP2's all-gather and
    reduce-scatter buffers) and gathered_parameters (FSDP2's unsharded parameters)."""
    options = TimingOptions.of(options, **settings, train=True)
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("ddp_benchmark needs an initialised torch.distributed process group (run under torchrun)")
    rank, world = dist.get_rank(), dist.get_world_size()
    backend = dist.get_backend()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    clock = clock_for(device)
    run = plan(model, options, device)
    name = name or type(model).__name__
    with backend_settings(run):  # threads, TF32 and cudnn flags as the run's precision says
        measured = _rank_memory(model, tuple(input_shape), batch_size, run, device, local_rank, shard, name) \
            if memory else None
        work = model_copy(model).to(device)
        work = (work.to(run.cast_to) if run.cast_to is not None else work).train()
        x = example_batch(tuple(input_shape), batch_size, run)
        return _time_ranks(work, x, run, clock, single_samples_per_s, name, batch_size, rank, world, backend,
                           local_rank, device, shard, measured)


def _time_ranks(work, x, run, clock, single_samples_per_s, name, batch_size, rank, world, backend, local_rank,
                device, sharded, measured) -> DistributedReport | None:
    min_time, min_runs, warmup = run.options.min_time, run.options.min_runs, run.options.warmup
    source = "given"
    if single_samples_per_s is None:
        source = "measured on rank 0 in this run, other ranks idle"
        value = torch.zeros(1, dtype=torch.float64)
        if rank == 0:
            alone = model_copy(work)
            step = make_step(alone, (x,), {}, run)
            for _ in range(warmup):
                step()
            runs = sample(step, clock, min_runs=max(min_runs, 5), min_time=min_time)
            value[0] = batch_size / LatencyStats.of(runs).p50
        dist.broadcast(value, src=0)
        single_samples_per_s = value.item()
    param_bytes = sum(p.numel() * p.element_size() for p in work.parameters() if p.requires_grad)
    comm: list[float] = []
    if sharded:
        stepped = fully_shard_children(work, device)
    else:
        stepped = _replicate(work, device, local_rank)
        stepped.register_comm_hook(None, _timing_hook(comm))
    step = make_step(stepped, (x,), {}, run)
    for _ in range(warmup):
        step()
    steps = _steps_everyone_runs(step, clock, min_time, min_runs)
    comm.clear()
    samples = sample(step, clock, min_runs=steps, max_runs=steps)
    row = RankRow(rank, os.uname().nodename, str(device), torch.get_num_threads(), LatencyStats.of(samples),
                  batch_size, None if sharded else sum(comm) / steps, measured)
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(row, gathered, dst=0)
    if rank != 0:
        return None
    return DistributedReport(name, backend, world, batch_size, param_bytes, single_samples_per_s, source,
                             tuple(sorted(gathered, key=lambda r: r.rank)), run.precision.name, run.autocast,
                             "fsdp2" if sharded else "ddp")


def run_under_torchrun(build_model, input_shape, batch_size: int, *, cuda: bool = False,
                       threads: int | None = None, name: str | None = None, **options) -> DistributedReport | None:
    """One rank of a torchrun job: split the CPU threads between local ranks, join the process
    group (NCCL with cuda, else gloo), time ``build_model()`` with ddp_benchmark (``options``:
    its keywords, memory and shard included), leave the group. ``name``: the model's name in the
    report (the CLI's model spec, as its other reports say; default the model's class). Raises
    ValueError when not started by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ValueError("not started by torchrun (no RANK/WORLD_SIZE)")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    try:
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        report = ddp_benchmark(build_model(), input_shape, batch_size, name=name, **options)
        dist.barrier()  # nobody tears down while a peer is still in a collective
        return report
    finally:
        if dist.is_initialized():
            # Free DDP's reducer and the comm hook's futures (Python objects held by gloo's C++
            # threads) while the interpreter is whole; left to interpreter exit they abort it
            # ("terminate called without an active exception": 1 run in 8-24 alone here, and in 2 of
            # 2 full test-suite runs; none in 30 runs alone since).
            gc.collect()
            dist.destroy_process_group()
