"""``TorchprofTrainerCallback``: ``track()``'s figures in a transformers ``Trainer``'s own logs.

A step is one optimizer step, ``on_step_begin`` to ``on_step_end`` (all its gradient-accumulation
micro-batches; their samples add up). The Trainer appends each log to ``state.log_history``
before it calls ``on_log``, and hands the same ``logs`` dict to every callback in turn; so at
each training log the callback adds the figures of the steps since the last log to both: the
history, and what the callbacks after it receive. The reporting integrations (``report_to``)
come before the user's callbacks: ``install(trainer)`` puts this callback first, so that they
see the figures too. The Trainer calls no callback when training raises: ``install`` also wraps
the trainer's ``train`` so that the tracker's hooks and dispatch modes come off then.
"""

from __future__ import annotations

import functools

try:
    from transformers import TrainerCallback
except ImportError as exc:  # a one-line reason instead of a traceback into the import
    raise ImportError("torchprof_lab.integrations.transformers needs transformers: pip install transformers"
                      ) from exc

from ..tracking.result import TrackFigures, TrackReport
from ..tracking.tracker import Tracker


def _args_dtype(args) -> str | None:
    """'bf16' or 'fp16' when the TrainingArguments train under autocast in it; None: the model's dtype."""
    if getattr(args, "bf16", False):
        return "bf16"
    if getattr(args, "fp16", False):
        return "fp16"
    return None


def _is_evaluation(logs: dict) -> bool:
    return any(str(k).startswith(("eval_", "test_")) for k in logs)


class TorchprofTrainerCallback(TrainerCallback):
    """Tracks a transformers ``Trainer``'s optimizer steps and adds the figures to its logs.

    ``every_n_steps``: None (default) adds the figures of the steps since the last log to each
    training log the Trainer makes (every ``logging_steps``); a number closes a window every that
    many steps and asks the Trainer to log then (``control.should_log``). ``tokens_per_sample``:
    default inferred from the first 2-D int64 input (``input_ids``); ``dtype``: the precision the
    MFU's peak is for (default: bf16/fp16 from the TrainingArguments, else the model's dtype).
    After training, ``report`` holds the TrackReport.
    """

    def __init__(self, every_n_steps: int | None = None, tokens_per_sample: int | None = None, *, dtype=None,
                 prefix: str = "torchprof/"):
        for name, value in (("every_n_steps", every_n_steps), ("tokens_per_sample", tokens_per_sample)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        self.every_n_steps, self.tokens_per_sample, self.dtype, self.prefix = (every_n_steps, tokens_per_sample,
                                                                               dtype, prefix)
        self.tracker: Tracker | None = None
        self.report: TrackReport | None = None
        self._pending: TrackFigures | None = None

    @classmethod
    def install(cls, trainer, **settings) -> "TorchprofTrainerCallback":
        """A callback put first in ``trainer``'s callbacks, before the reporting integrations, so
        that what they send (W&B, TensorBoard, ...) carries the figures. ``trainer.train`` becomes
        an instance attribute that closes the tracker when training raises (the Trainer calls no
        callback then), so no hook or dispatch mode outlives a failed run."""
        callback = cls(**settings)
        trainer.callback_handler.callbacks.insert(0, callback)
        train = trainer.train

        @functools.wraps(train)
        def train_closing_on_error(*args, **kwargs):
            try:
                return train(*args, **kwargs)
            except BaseException as exc:
                callback.close(exc)
                raise

        trainer.train = train_closing_on_error
        return callback

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        self.close()  # a run before this one that raised outside install()'s train: its hooks come off now
        dtype = self.dtype if self.dtype is not None else _args_dtype(args)
        self.tracker = Tracker(model, tokens_per_sample=self.tokens_per_sample, dtype=dtype).open()
        self.report, self._pending = None, None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.tracker is not None:
            self.tracker.begin_step()

    def on_step_end(self, args, state, control, **kwargs):
        if self.tracker is None:
            return
        self.tracker.end_step()
        if self.every_n_steps is not None and self.tracker.steps % self.every_n_steps == 0:
            self._pending = self.tracker.window()
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or _is_evaluation(logs):
            return
        figures = self._pending
        if figures is None and self.every_n_steps is None and self.tracker is not None:
            figures = self.tracker.window()
        self._pending = None
        if figures is None:
            return
        metrics = figures.metrics(self.prefix)
        logs.update(metrics)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(metrics)  # the Trainer recorded a copy of logs before calling us

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self, error: BaseException | None = None) -> TrackReport | None:
        """Hooks off and the counter left; the final report. The Trainer calls no callback when
        training raises: ``install``'s ``train`` calls this then; a callback passed in
        ``callbacks=`` needs ``try: trainer.train() finally: callback.close()``."""
        if self.tracker is not None:
            self.report = self.tracker.close(error)
            self.tracker = None
        return self.report
