"""Counts against published references: torchvision's weight metadata, and fvcore."""

import pytest
import torch
import torchvision
from torchvision.models import get_model_builder, get_model_weights

import torchprof_lab
from model_builders import meta_model

# every torchvision classifier, on the meta device (RegNets build on the CPU, uninitialised cost aside)
CLASSIFIERS = sorted(torchvision.models.list_models(module=torchvision.models))


def _build(name, weights):
    kwargs = {}
    if name == "googlenet":
        kwargs = {"aux_logits": False, "init_weights": False}  # as its weights build it
    elif name == "inception_v3":
        kwargs = {"init_weights": False}
    elif name.startswith("vit_"):
        kwargs = {"image_size": weights.transforms().crop_size[0]}
    return meta_model(get_model_builder(name), **kwargs)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_macs_and_params_match_torchvision_metadata(name):
    weights = get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size[0]
    r = torchprof_lab.count(_build(name, weights), (3, crop, crop), device="meta")
    published = weights.meta["_ops"]
    assert abs(r.macs / 1e9 - published) <= max(0.005 * published, 0.0005), (r.macs / 1e9, published)
    assert r.params == weights.meta["num_params"]
    assert not r.uncounted_ops


def test_the_classifier_list_covers_the_issue_families():
    for family in ("resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "convnext_tiny", "swin_t",
                   "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14", "googlenet"):
        assert family in CLASSIFIERS


@pytest.mark.parametrize("name,used,total", [
    ("googlenet", 6_624_904, 13_004_888),
    ("inception_v3", 23_834_568, 27_161_264),
])
def test_params_used_skips_auxiliary_heads_in_eval(name, used, total):
    model = meta_model(get_model_builder(name), aux_logits=True, init_weights=False)
    shape = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
    r = torchprof_lab.count(model, shape, device="meta")
    assert (r.params_used, r.params) == (used, total)


@pytest.fixture(scope="module")
def vit_b_16():
    return torchvision.models.vit_b_16()


@pytest.mark.parametrize("mode", ["no_grad", "grad", "inference_mode"])
def test_vit_on_real_cpu_counts_attention_in_every_grad_mode(vit_b_16, mode):
    """FlopCounterMode misses the CPU attention kernel or the fused MHA path (11.3/16.9 GMACs)."""
    context = torch.inference_mode() if mode == "inference_mode" else torch.set_grad_enabled(mode == "grad")
    with context:
        r = torchprof_lab.count(vit_b_16, (3, 224, 224))
    assert abs(r.macs / 1e9 - 17.564) <= 0.0005 * 17.564


def test_resnet18_matches_fvcore():
    from fvcore.nn import FlopCountAnalysis

    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 224, 224)
    fv = FlopCountAnalysis(model, x)
    fv.unsupported_ops_warnings(False)
    fv.uncalled_modules_warnings(False)
    r = torchprof_lab.count(model, (3, 224, 224))
    # fvcore's "flops" are MACs of conv and linear (plus a few norm/pool terms it adds itself)
    for layer in ("conv1", "layer1.0.conv1", "layer4.1.conv2", "fc"):
        assert r.layer(layer).macs == fv.by_module()[layer]
    assert abs(r.macs - fv.total()) / fv.total() < 0.01


def test_counts_are_deterministic_and_do_not_grow():
    model = torchvision.models.resnet18()
    first = torchprof_lab.count(model, (3, 64, 64))
    second = torchprof_lab.count(model, (3, 64, 64))
    assert first.to_dict() == second.to_dict()
