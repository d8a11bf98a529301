"""TorchprofCallback in a real Lightning Trainer on the CPU: the CSV logger's metrics carry the
torchprof figures, with the first step's FLOPs equal to the hand formula."""

import csv

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger

from torchprof_lab.integrations.lightning import TorchprofCallback

BATCH, IN, OUT = 5, 8, 4


class TinyRegressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(IN, OUT)

    def forward(self, x):
        return self.linear(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_trainer_logs_the_figures_every_n_steps(tmp_path):
    data = TensorDataset(torch.randn(6 * BATCH, IN), torch.randn(6 * BATCH, OUT))
    module = TinyRegressor()
    callback = TorchprofCallback(every_n_steps=2)
    trainer = pl.Trainer(max_steps=6, accelerator="cpu", logger=CSVLogger(tmp_path), enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=2,
                         callbacks=[callback])
    trainer.fit(module, DataLoader(data, batch_size=BATCH))

    with open(trainer.logger.experiment.metrics_file_path) as f:
        rows = [r for r in csv.DictReader(f) if r.get("torchprof/flops_per_step")]
    assert [int(r["step"]) for r in rows] == [2, 4, 6]  # every 2 steps, at the trainer's global step
    # forward 2*B*in*out + B*out (bias), backward the same (weight gradient, bias gradient)
    hand = 2 * (2 * BATCH * IN * OUT + BATCH * OUT)
    assert {float(r["torchprof/flops_per_step"]) for r in rows} == {hand}
    for r in rows:
        assert float(r["torchprof/samples_per_s"]) > 0
        assert float(r["torchprof/step_ms"]) > 0
        assert float(r["torchprof/flops_per_s"]) > 0
        assert float(r["torchprof/peak_memory_bytes"]) > 0
    report = callback.report
    assert report.steps == 6 and report.summary.timed_steps == 5 and report.samples_per_step == BATCH
    assert [(w.first_step, w.last_step, w.timed_steps) for w in report.windows] == [(1, 2, 1), (3, 4, 2), (5, 6, 2)]
    assert not module._forward_pre_hooks  # the tracker's hook is gone after fit
