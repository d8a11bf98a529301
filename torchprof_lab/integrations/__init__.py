"""Trainer callbacks that run ``torchprof_lab.track``'s Tracker inside a trainer's own loop and log its
figures through the trainer's loggers: ``integrations.lightning.TorchprofCallback`` (Lightning) and
``integrations.transformers.TorchprofTrainerCallback`` (transformers' Trainer). Each is imported from
its own module, so that importing one framework never imports the other (docs/training_callbacks.md)."""
