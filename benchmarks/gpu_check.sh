#!/usr/bin/env bash
# Everything this project wants measured on a GPU, in one command, printed as one table (sized for under
# 8 minutes on one H200-class GPU; the torch.compile / CUDA-graph rows get at most 3 minutes, then are reported
# as timed out):
#
#   benchmarks/gpu_check.sh [OUTPUT_FOLDER]            (default: benchmarks/results/gpu_check)
#
# 1. model_speed.py: B-224 / L-224 / g-378, random weights, LoRA merged, batch 1, fp32 / fp16 / bf16 (fps, and
#    the fp16 / bf16 outputs against fp32 on the same GPU), then fp16 with torch.compile and CUDA graphs (B-224).
# 2. tracker_speed.py: B-224 tracker at 1920x1080, 1 and 8 objects, frames decoded on the GPU (nvJPEG).
# 3. train_speed.py: one LoRA training step of L-224 and g-378 at batch 16, fp16: time and peak memory.
# 4. gpu_check.py: CUDA fp32 against the CPU on the same weights and inputs (TF32 off), nvJPEG against
#    libjpeg-turbo pixels, the demo tracker's boxes on the GPU against the CPU, and the table from 1-3.
#
# GPU_CHECK_DEVICE=cpu GPU_CHECK_SMOKE=1 runs the same steps with the tiny variant on the CPU, to check the
# script itself where no GPU is lent (the CUDA-only rows then say so).
#
# It needs no install: the interpreter is PYTHON (default: the repository's .venv/bin/python where it exists,
# else python3) with torch, torchvision, timm, safetensors, numpy, opencv, pyyaml, tqdm and matplotlib, and the
# checkout goes on PYTHONPATH. The VOT toolkit, TraX and SAM are not used.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"
else PY=python3
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
OUT="${1:-$REPO/benchmarks/results/gpu_check}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
mkdir -p "$OUT"
cd "$REPO"

if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
    models=tiny trackers=tiny trains=tiny frames=5 iters=3 steps=2 batch=2 objects=1,2 size=640x360 budget=60
    check_variant=tiny
else
    models=B-224,L-224,g-378 trackers=B-224 trains=L-224,g-378 frames=100 iters=100 steps=5 batch=16 objects=1,8
    size=1920x1080 budget=180 check_variant=B-224
fi
train_precision=fp16
if [ "$DEVICE" = cpu ]; then train_precision=fp32; fi

step() { echo "== $*" >&2; }

step "model speed and fp16 / bf16 agreement"
"$PY" benchmarks/model_speed.py --device "$DEVICE" --variants "$models" --batch 1 --precisions fp32,fp16,bf16 \
    --lora merged --warmup 10 --iters "$iters" --json "$OUT/model.json" > "$OUT/model.md"
if [ "$DEVICE" = cuda ]; then
    step "torch.compile and CUDA graphs (at most $budget s)"
    timeout "$budget" "$PY" benchmarks/model_speed.py --device cuda --variants "${models%%,*}" --batch 1 \
        --precisions fp16 --lora merged --compile --cuda-graphs --warmup 10 --iters "$iters" --accuracy-batch 0 \
        --json "$OUT/compiled.json" > "$OUT/compiled.md" || echo "compiled rows: timed out or failed" >&2
fi
step "tracker speed at $size"
"$PY" benchmarks/tracker_speed.py --device "$DEVICE" --variants "$trackers" --objects "$objects" \
    --frame-size "$size" --frames "$frames" --warmup 5 --json "$OUT/tracker.json" > "$OUT/tracker.md"
step "training step time and peak memory"
"$PY" benchmarks/train_speed.py --device "$DEVICE" --variants "$trains" --precisions "$train_precision" --batch "$batch" \
    --steps "$steps" --warmup 2 --data-samples 0 --json "$OUT/train.json" > "$OUT/train.md"
step "CUDA against the CPU, nvJPEG, and the table"
"$PY" benchmarks/gpu_check.py --device "$DEVICE" --results "$OUT" --markdown "$OUT/gpu_check.md" \
    --variant "$check_variant"
