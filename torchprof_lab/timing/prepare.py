"""What gets timed: the model in the requested form, its example batch, and one step.

The caller's model is never changed: conversions (dtype, channels_last, torch.compile) and
every training step run on a deep copy; plain inference runs on the model itself in eval mode
under inference_mode, inside ``model_state.model_restored``: afterwards it holds the same
objects with the same values (nothing the run cached on it, such as an inference tensor, stays).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..optimizers import make_optimizer
from ..dtypes import Precision, of_dtype, precision
from ..model_state import check_device, model_device, floating_dtype, model_copy, model_restored
from ..torch_internals import tree_leaves
from .options import TimingOptions


@dataclass(frozen=True)
class Plan:
    """How the options apply to this model on this device: the one precision model of a run."""

    device: torch.device
    precision: Precision  # what the run is labelled and compared against
    held: torch.dtype  # the model's own floating dtype
    cast_to: torch.dtype | None  # a copy is cast to this dtype (None: kept as held)
    autocast: bool  # a training step under torch.autocast (fp32 master weights)
    options: TimingOptions

    @property
    def input_dtype(self) -> torch.dtype:
        return self.cast_to or self.held

    @property
    def copies(self) -> bool:
        o = self.options
        return o.train or o.channels_last or o.compile or self.cast_to is not None

    def autocast_context(self):
        if not self.autocast:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.dtype)


def timed_device(model: nn.Module, device) -> torch.device:
    """The device a timing run uses: the model's own; ``device`` may only name it (a meta model
    has no data to time, and moving the user's model is theirs to do)."""
    home = model_device(model)
    wanted = home if device is None else check_device(device)
    if wanted.type == "meta" or home.type == "meta":
        raise ValueError("a model on the meta device cannot be timed: it has no data; count it instead")
    if wanted != home and not (wanted.type == home.type and wanted.index is None):
        raise ValueError(f"model is on {home} but device={wanted} was asked for: move the model first")
    return home


def plan(model: nn.Module, options: TimingOptions, device: torch.device) -> Plan:
    """Resolve dtype None to the model's own precision; fp16/bf16 on an fp32 model are a cast
    copy for inference and autocast for a training step."""
    held = floating_dtype(model)
    want, cast_to, autocast = precision_plan(held, options.dtype, options.train)
    if want.tf32 and device.type != "cuda":
        raise ValueError("tf32 is a CUDA tensor-core mode; on the CPU use fp32 or bf16")
    return Plan(device, want, held, cast_to, autocast, options)


def precision_plan(held: torch.dtype, dtype, train: bool) -> tuple[Precision, torch.dtype | None, bool]:
    """(precision, dtype to cast a copy to or None, autocast?) for a model held in ``held``: the
    one rule timing and counting share. dtype None is the model's own precision; fp16/bf16 on an
    fp32 model are a cast copy for inference and autocast (fp32 master weights) for training."""
    own = of_dtype(held)
    want = precision(dtype) if dtype is not None else own if own and own.floating else precision("fp32")
    autocast = train and want.dtype in (torch.float16, torch.bfloat16) and held == torch.float32
    return want, None if autocast or want.dtype == held else want.dtype, autocast


@contextmanager
def backend_settings(run: Plan):
    """Threads, TF32 and cudnn flags for the run; everything restored afterwards.

    TF32 math is on exactly when the run's precision is tf32, so an fp32 row is fp32."""
    saved_threads = torch.get_num_threads()
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        if run.options.threads:
            torch.set_num_threads(run.options.threads)
        if run.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = run.precision.tf32
            torch.backends.cudnn.allow_tf32 = run.precision.tf32
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(saved_threads)
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


@contextmanager
def prepared_model(model: nn.Module, run: Plan):
    """Yield (module to time, the same module uncompiled, for counting): the model itself
    (eval, restored after) or a converted copy."""
    options = run.options
    with ExitStack() as stack:
        if run.copies:
            work = model_copy(model)  # copy.deepcopy, lazy modules included
            if run.cast_to is not None:
                work = work.to(run.cast_to)
            if options.channels_last:
                work = work.to(memory_format=torch.channels_last)
            work.train(options.train)
            yield (torch.compile(work) if options.compile else work), work
        else:  # the model itself (a copy if it has unmaterialised lazy layers), left as it was
            work = stack.enter_context(model_restored(model, False)).module
            yield work, work


def example_batch(input_shape, batch_size: int, run: Plan) -> torch.Tensor:
    """A random batch in the dtype the timed model takes (fp32 under training autocast)."""
    x = torch.randn((batch_size, *input_shape), dtype=run.input_dtype, device=run.device)
    if run.options.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def trainable_outputs(output) -> list[torch.Tensor]:
    """The floating outputs that require grad (what a loss can reach); a one-line error if none."""
    leaves = [t for t in tree_leaves(output)
              if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    if not leaves:
        raise ValueError("the model's output has no floating-point tensor that requires grad: nothing to train")
    return leaves


def _loss(output) -> torch.Tensor:
    """A cheap scalar from every floating output (the mean), so backward reaches all of them."""
    return sum(t.float().mean() for t in trainable_outputs(output))


def make_step(work: nn.Module, args: tuple, kwargs: dict, run: Plan):
    """One timed unit: a forward (inference) or forward + loss + backward + optimizer step."""
    if not run.options.train:
        def inference_step():
            work(*args, **kwargs)

        return inference_step
    params = [p for p in work.parameters() if p.requires_grad]
    optimizer, _ = make_optimizer(run.options.optimizer, params)

    def training_step():
        optimizer.zero_grad(set_to_none=True)
        with run.autocast_context():
            loss = _loss(work(*args, **kwargs))
        loss.backward()
        optimizer.step()

    return training_step
