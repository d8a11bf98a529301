"""Shared test helpers; tests/ is put on sys.path so test folders import fake_pynvml and ddp_models."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
import pytest


def meta_model(builder, **kwargs):
    """Build a torchvision model without allocating weights (CPU fallback for RegNet)."""
    try:
        with torch.device("meta"):
            return builder(**kwargs)
    except NotImplementedError:
        return builder(**kwargs)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
