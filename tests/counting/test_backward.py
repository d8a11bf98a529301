"""Backward counts come from the real backward ops, attributed to the layer that made them."""

import torch
import torchvision
from torch import nn

import torchprof_lab
from model_builders import meta_model


def test_mlp_backward_exact():
    n, a, b, c = 8, 5, 7, 3
    model = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c))
    r = torchprof_lab.count(model, (a,), batch_size=n, backward=True)
    # first layer: weight gradient only (the input needs none); second: weight + input gradients
    assert r.layer("0").backward_macs == n * a * b
    assert r.layer("2").backward_macs == 2 * n * b * c
    assert r.backward_macs == n * a * b + 2 * n * b * c
    assert r.total_macs == r.macs + r.backward_macs
    assert r.total_flops == r.flops + r.backward_flops
    assert r.layer("1").backward_flops == n * b  # threshold_backward, one per element


def test_depthwise_conv_backward_not_multiplied_by_groups():
    """torch's FlopCounterMode over-counts grouped-conv backward by the groups factor."""
    c = 32
    model = nn.Sequential(nn.Conv2d(3, c, 1), nn.Conv2d(c, c, 3, groups=c, bias=False))
    r = torchprof_lab.count(model, (3, 16, 16), backward=True)
    depthwise = r.layer("1")
    assert depthwise.backward_macs == 2 * depthwise.macs  # grad input + grad weight


def test_mobilenet_v2_training_is_about_three_forwards():
    model = meta_model(torchvision.models.mobilenet_v2)
    r = torchprof_lab.count(model, (3, 224, 224), batch_size=2, backward=True, device="meta")
    assert 2.6 < r.total_flops / r.flops < 3.1
    assert not r.uncounted_ops


def test_without_backward_total_equals_forward():
    r = torchprof_lab.count(nn.Linear(4, 4), (4,))
    assert (r.backward_flops, r.total_flops, r.total_macs) == (0, r.flops, r.macs)


def test_backward_attributed_to_layers_sums_to_total():
    model = torchvision.models.resnet18()
    r = torchprof_lab.count(model, (3, 64, 64), batch_size=2, backward=True)
    top = [layer for layer in r.layers if layer.depth == 1]
    root_self = r.backward_flops - sum(layer.backward_flops for layer in top)
    assert 0 <= root_self < 0.01 * r.backward_flops
    assert r.layer("layer3").backward_macs > r.layer("layer3").macs  # weights and inputs both


def test_backward_inside_inference_mode_is_a_clear_error():
    with torch.inference_mode():
        try:
            torchprof_lab.count(nn.Linear(2, 2), (2,), backward=True)
        except ValueError as exc:
            assert "inference_mode" in str(exc)
        else:
            raise AssertionError("expected ValueError")
