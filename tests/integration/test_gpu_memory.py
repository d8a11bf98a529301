"""The memory prediction beside torch.cuda.max_memory_allocated on a real GPU. Skipped where torch
sees no CUDA device. Written without a GPU at hand: the tolerance leaves room for cuBLAS/cuDNN
workspaces, which the caching allocator counts and the tracker cannot see (docs/memory.md)."""

import pytest
import torch
import torchvision

import torchprof_lab

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_resnet18_training_step_prediction_beside_max_memory_allocated():
    model = torchvision.models.resnet18().cuda()
    predicted = torchprof_lab.memory(model, (3, 128, 128), 8, train=True, optimizer="sgd-momentum", device="meta",
                                     target="cuda")
    measured = torchprof_lab.memory(model, (3, 128, 128), 8, train=True, optimizer="sgd-momentum")
    work = torchvision.models.resnet18().cuda()
    opt = torch.optim.SGD(work.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(8, 3, 128, 128, device="cuda")

    def step():
        work(x).sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    assert measured.device.startswith("cuda") and measured.target == "cuda"
    assert abs(measured.peak_bytes - predicted.peak_bytes) / peak < 0.02
    assert abs(predicted.peak_bytes - peak) / peak < 0.15
