"""``TorchprofCallback``: ``track()``'s figures in a Lightning ``Trainer``, logged every N steps.

A step is one training batch, from ``on_train_batch_start`` to ``on_train_batch_end`` (data
loading between batches is not in it); its samples are the batch Lightning hands the hook. The
first batch is counted and left out of the time-based figures. Every ``every_n_steps`` batches
the figures of the batches since the last logging go to each of the trainer's loggers
(``logger.log_metrics``, at ``trainer.global_step``) under "torchprof/" keys.
"""

from __future__ import annotations

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as exc:  # a one-line reason instead of a traceback into the import
    raise ImportError("torchprof_lab.integrations.lightning needs Lightning 2: pip install 'torchprof_lab[lightning]'"
                      ) from exc

from ..tracking.result import TrackFigures, TrackReport
from ..tracking.tracker import Tracker

# Lightning's precision setting -> the precision the MFU's peak is for (None: the model's own)
_PRECISIONS = {"bf16": "bf16", "16": "fp16", "64": "fp64"}


def _trainer_dtype(trainer) -> str | None:
    """'bf16' for precision="bf16-mixed" or "bf16-true", 'fp16' for "16-mixed", None for fp32."""
    setting = str(getattr(trainer, "precision", "32")).split("-")[0]
    return _PRECISIONS.get(setting)


class TorchprofCallback(Callback):
    """Tracks the training batches of a Lightning ``Trainer`` and logs the figures every
    ``every_n_steps`` batches (and the rest at the end of training).

    ``tokens_per_sample``: tokens in one sample (default: inferred from a 2-D int64 tensor in
    the batch); ``dtype``: the precision the MFU's peak is for (default: the trainer's
    precision setting, else the model's dtype). After ``fit``, ``report`` holds the TrackReport.
    """

    def __init__(self, every_n_steps: int = 50, tokens_per_sample: int | None = None, *, dtype=None,
                 prefix: str = "torchprof/"):
        super().__init__()
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
        if tokens_per_sample is not None and (isinstance(tokens_per_sample, bool) or
                                              not isinstance(tokens_per_sample, int) or tokens_per_sample < 1):
            raise ValueError(f"tokens_per_sample must be a positive integer or None, got {tokens_per_sample!r}")
        self.every_n_steps, self.tokens_per_sample, self.dtype, self.prefix = (every_n_steps, tokens_per_sample,
                                                                               dtype, prefix)
        self.tracker: Tracker | None = None
        self.report: TrackReport | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        dtype = self.dtype if self.dtype is not None else _trainer_dtype(trainer)
        self.tracker = Tracker(pl_module, tokens_per_sample=self.tokens_per_sample, dtype=dtype).open()
        self.report = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.tracker is not None:
            self.tracker.begin_step(batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.tracker is None:
            return
        self.tracker.end_step()
        if self.tracker.steps % self.every_n_steps == 0:
            self._log(trainer, self.tracker.window())

    def on_train_end(self, trainer, pl_module) -> None:
        if self.tracker is not None:
            self._log(trainer, self.tracker.window())
            self._close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close(exception)

    def teardown(self, trainer, pl_module, stage) -> None:
        self._close()

    def _close(self, error: BaseException | None = None) -> None:
        """Hooks off (also when training raised); the final report kept."""
        if self.tracker is not None:
            self.report = self.tracker.close(error)
            self.tracker = None

    def _log(self, trainer, figures: TrackFigures | None) -> None:
        if figures is None:
            return
        metrics = figures.metrics(self.prefix)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
