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
# issue 12: token models on the GPU (random weights, nothing downloaded)
llama=(--config num_hidden_layers=8 hidden_size=1024 num_attention_heads=16 num_key_value_heads=4 intermediate_size=2816 vocab_size=32000)
run gen_gpt2_bf16 "$py" -m torchprof_lab hf:gpt2 --config n_layer=2 --generate --prompt-len 128 --new-tokens 64 --batch 1,8 --device cuda --dtype bf16
run gen_gpt2_static_compile "$py" -m torchprof_lab hf:gpt2 --config n_layer=2 --generate --prompt-len 128 --new-tokens 64 --batch 1,8 --device cuda --dtype bf16 --cache static --compile --warmup 3
run gen_llama_bf16 "$py" -m torchprof_lab hf:llama "${llama[@]}" --generate --prompt-len 512 --new-tokens 128 --batch 1,8,32 --device cuda --dtype bf16 --format json
run llama_train_bf16 "$py" -m torchprof_lab hf:llama "${llama[@]}" --seq-len 128,1024 --batch 1,8 --train --dtype bf16 --device cuda
run gpt2_train_bf16 "$py" -m torchprof_lab hf:gpt2 --seq-len 128,1024 --batch 1,8 --train --dtype bf16 --device cuda
run memory_resnet50 "$py" -m torchprof_lab resnet50 --memory --train --device cuda --batch 32 --depth 1
run fit_h100 "$py" -m torchprof_lab resnet50 --no-timing --fit H100-SXM5 --train --optimizer adamw
# issue 11/13: token memory on CUDA, the HTML page, the Perfetto trace with NVML counters
run gpt2_memory_fit "$py" -m torchprof_lab hf:gpt2 --seq-len 1024 --batch 8 --train --optimizer adamw --dtype bf16 --device cuda --memory --fit 24GiB --depth 1
run html_report "$py" -m torchprof_lab resnet50 --device cuda --batch 1,8,64 --per-layer --memory --format html --output "$out/resnet50.html"
run trace "$py" -m torchprof_lab resnet50 --device cuda --batch 32 --trace "$out/resnet50_trace.json" --depth 1
run pytest "$py" -m pytest -q
echo "outputs in $out"
