"""What gets timed: the model in the requested form, its example batch, and one step.

The caller's model is never changed: conversions (dtype, channels_last, torch.compile) and
every training step run on a deep copy; plain inference runs on the model itself in eval mode
under inference_mode, with its flags and buffers restored afterwards.
"""

from __future__ import annotations

import copy
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..model_state import buffers_restored, mode_restored

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TimingOptions:
    """How to time: precision, mode and the warm-up and stopping rules."""

    device: torch.device
    dtype: str = "fp32"
    train: bool = False
    warmup: int = 3
    warmup_time: float = 0.5
    min_time: float = 1.0
    min_runs: int = 10
    max_runs: int = 10_000
    max_time: float = 30.0
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None
    optimizer: object = None  # callable(params) -> torch.optim.Optimizer; SGD(lr=1e-3) if None

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got '{self.dtype}'")
        if self.dtype == "tf32" and self.device.type != "cuda":
            raise ValueError("tf32 is a CUDA tensor-core mode; on the CPU use fp32 or bf16")
        if self.min_time < 0 or self.warmup < 0 or self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError("need min_time >= 0, warmup >= 0 and 1 <= min_runs <= max_runs")


def _needs_copy(options: TimingOptions) -> bool:
    return options.train or options.channels_last or options.compile or options.dtype in ("fp16", "bf16")


@contextmanager
def backend_settings(options: TimingOptions):
    """Threads, TF32 and cudnn flags for the run; everything restored afterwards."""
    saved_threads = torch.get_num_threads()
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        if options.threads:
            torch.set_num_threads(options.threads)
        if options.device.type == "cuda":
            tf32 = options.dtype == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(saved_threads)
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


@contextmanager
def prepared_model(model: nn.Module, options: TimingOptions):
    """Yield the module to time: the model itself (eval, restored after) or a converted copy."""
    with ExitStack() as stack:
        if _needs_copy(options):
            work = copy.deepcopy(model)
            if options.dtype in ("fp16", "bf16") and not options.train:
                work = work.to(DTYPES[options.dtype])
            if options.channels_last:
                work = work.to(memory_format=torch.channels_last)
            work.train(options.train)
            if options.compile:
                work = torch.compile(work)
        else:
            stack.enter_context(mode_restored(model, False))
            stack.enter_context(buffers_restored(model))
            work = model
        yield work


def example_batch(model: nn.Module, input_shape, batch_size: int, options: TimingOptions) -> torch.Tensor:
    """A random batch in the dtype the timed model computes in (fp32 under training autocast)."""
    dtype = DTYPES[options.dtype] if not options.train else torch.float32
    floating = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    if options.dtype == "fp32" and floating != torch.float32:
        dtype = floating  # an fp16 model timed "as is"
    x = torch.randn((batch_size, *input_shape), dtype=dtype, device=options.device)
    if options.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _loss(output) -> torch.Tensor:
    """A cheap scalar from every floating output (the mean), so backward reaches all of them."""
    leaves = [t for t in torch.utils._pytree.tree_leaves(output)
              if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    if not leaves:
        raise ValueError("the model's output has no floating-point tensor that requires grad: nothing to train")
    return sum(t.float().mean() for t in leaves)


def make_step(work: nn.Module, args: tuple, kwargs: dict, options: TimingOptions):
    """One timed unit: a forward (inference) or forward + loss + backward + optimizer step."""
    if not options.train:
        def inference_step():
            work(*args, **kwargs)

        return inference_step
    params = [p for p in work.parameters() if p.requires_grad]
    optimizer = options.optimizer(params) if options.optimizer else torch.optim.SGD(params, lr=1e-3)
    amp = options.dtype in ("fp16", "bf16")
    device_type = options.device.type

    def training_step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=DTYPES[options.dtype], enabled=amp):
            loss = _loss(work(*args, **kwargs))
        loss.backward()
        optimizer.step()

    return training_step
