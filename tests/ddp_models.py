"""Model factories for the torchrun tests (importable as tests.ddp_models or ddp_models)."""

import os

from torch import nn


def tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def mlp():
    """Three Linear layers whose rows split evenly over 2 ranks: FSDP2's shards are exactly half."""
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 64))


def fails_on_rank_1():
    if os.environ.get("RANK") == "1":
        raise RuntimeError("model construction failed on purpose")
    return tiny()
