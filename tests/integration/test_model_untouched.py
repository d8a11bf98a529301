"""After count(), the model is exactly as it was, also when its forward raises."""

import pytest
import torch
import torchvision
from torch import nn

import torchprof_lab
from torchprof_lab import ForwardError


def snapshot(model):
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "keys": list(model.state_dict().keys()),
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                  for m in model.modules()],
    }


def assert_same(before, model):
    after = snapshot(model)
    assert after["keys"] == before["keys"]
    for key in before["keys"]:
        assert torch.equal(after["state"][key], before["state"][key]), key
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(g is None for g in after["grads"])
    assert after["hooks"] == before["hooks"]


def mixed_model():
    model = torchvision.models.resnet18()
    model.train()
    model.layer2.eval()  # a mixed mode must come back mixed
    for p in model.layer1.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("options", [{}, {"backward": True}, {"device": "meta"},
                                     {"device": "meta", "backward": True}, {"train": True}])
def test_count_leaves_model_as_it_was(options):
    model = mixed_model()
    before = snapshot(model)
    r = torchprof_lab.count(model, (3, 64, 64), batch_size=2, **options)
    assert r.macs > 0
    assert_same(before, model)
    if options.get("backward"):
        assert r.backward_macs > 0


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 4)

    def forward(self, x):
        x = self.bn(x)
        return self.head(x.view(-1, 5))  # wrong on purpose


@pytest.mark.parametrize("backward", [False, True])
def test_model_restored_when_forward_raises(backward):
    model = Exploding().train()
    before = snapshot(model)
    with pytest.raises(ForwardError):
        torchprof_lab.count(model, (4,), batch_size=8, backward=backward)
    assert_same(before, model)


def test_training_mode_batchnorm_statistics_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = snapshot(model)
    torchprof_lab.count(model, (3, 8, 8), batch_size=4, train=True)
    assert_same(before, model)
    assert model[1].num_batches_tracked.item() == 0


def test_no_buffers_or_state_dict_keys_added():
    """thop leaves total_ops/total_params buffers in every module."""
    model = torchvision.models.resnet50()
    keys = list(model.state_dict().keys())
    torchprof_lab.count(model, (3, 32, 32))
    assert list(model.state_dict().keys()) == keys


def test_global_hooks_untouched():
    from torch.nn.modules import module as module_lib

    counts = (len(module_lib._global_forward_hooks), len(module_lib._global_forward_pre_hooks))
    torchprof_lab.count(nn.Linear(3, 3), (3,))
    assert (len(module_lib._global_forward_hooks), len(module_lib._global_forward_pre_hooks)) == counts


def test_meta_count_allocates_no_weights_and_keeps_model_on_cpu():
    model = nn.Linear(256, 256)
    r = torchprof_lab.count(model, (256,), device="meta")
    assert model.weight.device.type == "cpu" and r.macs == 256 * 256
    assert r.device == "meta"
