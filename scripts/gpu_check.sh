#!/usr/bin/env bash
# The GPU paths, run for real on a machine with an NVIDIA GPU; every output lands in DIR.
# Usage: bash scripts/gpu_check.sh DIR   (after the README's set-up command)
# Then copy what matters into docs/gpu_runs.md with the date, the GPU and this command.
set -uo pipefail
out=${1:?usage: gpu_check.sh DIR}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
run() { local name=$1; shift; echo "+ $*" | tee "$out/$name.txt"; "$@" >>"$out/$name.txt" 2>&1; echo "rc=$?" >>"$out/$name.txt"; }
run nvidia_smi nvidia-smi
run device_info "$py" -m torchprof_lab --device-info
run device_info_json "$py" -m torchprof_lab --device-info --format json
run count_cuda "$py" -m torchprof_lab resnet50 --device cuda --no-timing --backward --depth 1
run vit_cuda "$py" -m torchprof_lab vit_b_16 --device cuda --no-timing --depth 1
run infer_fp32 "$py" -m torchprof_lab resnet50 --device cuda --batch 1,8,64 --depth 1
run infer_fp16 "$py" -m torchprof_lab resnet50 --device cuda --batch 64 --dtype fp16 --channels-last --depth 1 --per-layer --roofline "$out/roofline_fp16.png"
run infer_tf32 "$py" -m torchprof_lab resnet50 --device cuda --batch 64 --dtype tf32 --depth 1
run train_bf16 "$py" -m torchprof_lab resnet50 --device cuda --batch 64 --train --dtype bf16 --depth 1
run sweep "$py" -m torchprof_lab resnet50 --device cuda --sweep --max-batch --sweep-budget 240 --min-time 0.5 --depth 1 --batch-plot "$out/batch_scaling.png"
run compile "$py" -m torchprof_lab resnet50 --device cuda --batch 64 --compile --dtype fp16 --depth 1
run precision "$py" -m torchprof_lab resnet50 --device cuda --batch 32 --compare-dtypes fp32,fp16,bf16,tf32
run ddp_nccl "$py" -m torch.distributed.run --standalone --nproc_per_node 1 -m torchprof_lab resnet18 --device cuda --train --ddp --batch 64
run pytest "$py" -m pytest -q
echo "outputs in $out"
