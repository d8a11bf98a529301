"""TorchprofTrainerCallback in a real transformers Trainer on the CPU: state.log_history carries
the torchprof figures at each training log, the FLOPs equal count()'s of the same step."""

import pytest
import torch
from torch import nn

from transformers import Trainer, TrainerCallback, TrainingArguments

import torchprof_lab
from torchprof_lab.integrations.transformers import TorchprofTrainerCallback

BATCH, SEQ, VOCAB, DIM = 4, 6, 16, 8


class TinyLM(nn.Module):
    """Token ids in, the loss out (as a transformers model returns it when given labels)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, input_ids, labels):
        logits = self.head(self.embed(input_ids))
        return {"loss": nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())}


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n):
        self.ids = torch.randint(0, VOCAB, (n, SEQ))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class Seen(TrainerCallback):
    """Stands for a reporting integration: records the logs it is handed."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def test_trainer_log_history_carries_the_figures(tmp_path):
    model = TinyLM()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=6, logging_steps=2, report_to=[], use_cpu=True,
                             per_device_train_batch_size=BATCH, save_strategy="no", disable_tqdm=True,
                             dataloader_num_workers=0, learning_rate=1e-3)
    seen = Seen()
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(6 * BATCH), callbacks=[seen])
    callback = TorchprofTrainerCallback.install(trainer)  # before `seen`, as before a reporter
    expected = torchprof_lab.count(model, inputs={"input_ids": torch.randint(0, VOCAB, (BATCH, SEQ)),
                                                  "labels": torch.randint(0, VOCAB, (BATCH, SEQ))},
                                   backward=True).total_flops
    trainer.train()

    logged = [h for h in trainer.state.log_history if "torchprof/samples_per_s" in h]
    assert [h["step"] for h in logged] == [2, 4, 6]  # every training log (logging_steps=2)
    assert all("loss" in h for h in logged)
    for h in logged:
        assert h["torchprof/flops_per_step"] == expected
        assert h["torchprof/samples_per_s"] > 0
        assert h["torchprof/tokens_per_s"] == pytest.approx(SEQ * h["torchprof/samples_per_s"])  # from input_ids
        assert h["torchprof/step_ms"] > 0
    assert [log["torchprof/flops_per_step"] for log in seen.logs if "torchprof/flops_per_step" in log] == [expected] * 3
    report = callback.report
    assert report.steps == 6 and report.samples_per_step == BATCH and report.tokens_per_sample == SEQ
    assert not model._forward_pre_hooks


class FailingLM(TinyLM):
    """Raises in its first forward, inside the counted step (the counter's modes are on then)."""

    def forward(self, input_ids, labels):
        self.head(self.embed(input_ids))
        raise RuntimeError("the model failed")


def test_training_that_raises_in_the_counted_step_leaves_nothing_on(tmp_path):
    from torch.nn.modules import module as module_lib
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    model = FailingLM()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, report_to=[], use_cpu=True,
                             per_device_train_batch_size=BATCH, save_strategy="no", disable_tqdm=True,
                             dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(2 * BATCH))
    callback = TorchprofTrainerCallback.install(trainer)
    global_hooks = (len(module_lib._global_forward_pre_hooks), len(module_lib._global_forward_hooks))
    with pytest.raises(RuntimeError, match="the model failed"):
        trainer.train()

    assert _get_current_dispatch_mode() is None
    assert (len(module_lib._global_forward_pre_hooks), len(module_lib._global_forward_hooks)) == global_hooks
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert callback.tracker is None
    assert callback.report.steps == 0
    assert "the loop raised RuntimeError in step 1: that step is left out" in callback.report.notes
    table = callback.report.to_table()
    assert "no steps" in table and "(1-0)" not in table
